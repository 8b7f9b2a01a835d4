"""The transfer engine: one verified, resumable transfer between any two drivers.

Embedding services import from the top-level package (see ``docs/embedding.md``)::

    from transfercore import Journal, Transfer, TransferOptions

    transfer = Transfer("posix:///data/in", "mock://store/out", TransferOptions(streams=8),
                        journal=Journal())
    transfer.add_listener(lambda event: print(event.to_dict()))
    result = transfer.run()

See ``docs/engine.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazyexports import lazy_exports

if TYPE_CHECKING:  # the names as the type checker sees them; at run time they load on first use
    from . import events
    from .aio import AsyncTransfer, copy_async
    from .events import (
        Done,
        Event,
        Failed,
        Interrupted,
        Listener,
        Marker,
        Progress,
        Restarted,
        Resumed,
        Started,
        UpToDate,
        Verifying,
        VerifyProgress,
    )
    from .options import DEFAULT_STREAMS, TransferOptions
    from .policy import MarkerPolicy
    from .transfer import Transfer, TransferResult, copy

#: Where each name lives: a tree copy needs only the options of its large files'
#: transfers (``transfercore.engine.options``), and importing that module loads this
#: package first; the transfer machinery and asyncio load when a transfer runs.
_EXPORTS: dict[str, tuple[str, ...]] = {
    ".events": (
        "events", "Done", "Event", "Failed", "Interrupted", "Listener", "Marker", "Progress", "Restarted",
        "Resumed", "Started", "UpToDate", "Verifying", "VerifyProgress",
    ),
    ".aio": ("AsyncTransfer", "copy_async"),
    ".options": ("DEFAULT_STREAMS", "TransferOptions"),
    ".policy": ("MarkerPolicy",),
    ".transfer": ("Transfer", "TransferResult", "copy"),
}
__all__ = [
    "DEFAULT_STREAMS",
    "AsyncTransfer",
    "Done",
    "Event",
    "Failed",
    "Interrupted",
    "Listener",
    "Marker",
    "MarkerPolicy",
    "Progress",
    "Restarted",
    "Resumed",
    "Started",
    "Transfer",
    "TransferOptions",
    "TransferResult",
    "UpToDate",
    "Verifying",
    "VerifyProgress",
    "copy",
    "copy_async",
    "events",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals(), __all__)
