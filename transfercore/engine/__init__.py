"""The transfer engine: one verified, resumable transfer between any two drivers.

Embedding services import from the top-level package (see ``docs/embedding.md``)::

    from transfercore import Journal, Transfer, TransferOptions

    transfer = Transfer("posix:///data/in", "mock://store/out", TransferOptions(streams=8),
                        journal=Journal())
    transfer.add_listener(lambda event: print(event.to_dict()))
    result = transfer.run()

See ``docs/engine.md``.
"""

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
