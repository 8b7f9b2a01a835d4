"""The transfer engine: one verified, resumable transfer between any two drivers.

Embedding services use four names::

    from transfercore.engine import Transfer, TransferOptions, copy
    from transfercore.engine import events

    transfer = Transfer("posix:///data/in", "mock://store/out", TransferOptions(streams=8),
                        journal=Journal())
    transfer.add_listener(lambda event: print(event.to_dict()))
    result = transfer.run()

See ``docs/engine.md``.
"""

from . import events
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
    "events",
]
