"""transfercore: resumable data transfers that never leave a silent gap.

Everything an embedding service or a driver needs is importable from here::

    import transfercore

    with transfercore.Journal() as journal:
        result = transfercore.copy("posix:///data/in", "posix:///backup/in", journal=journal)

See ``docs/embedding.md`` (services) and ``docs/writing-a-driver.md`` (drivers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazyexports import lazy_exports

if TYPE_CHECKING:  # the names as the type checker sees them; at run time they load on first use
    from . import errors
    from .capabilities import Capabilities, RestartModel
    from .contract import Driver, ObjectInfo, Reader, Writer
    from .engine import (
        AsyncTransfer,
        Done,
        Event,
        Failed,
        Interrupted,
        Listener,
        Marker,
        MarkerPolicy,
        Progress,
        Restarted,
        Resumed,
        Started,
        Transfer,
        TransferOptions,
        TransferResult,
        UpToDate,
        Verifying,
        VerifyProgress,
        copy,
        copy_async,
        events,
    )
    from .errors import (
        CapabilityError,
        ChecksumMismatch,
        DriverLoadError,
        DriverNotFound,
        InvalidRead,
        InvalidWrite,
        LocationError,
        NotFound,
        OptionError,
        RangeSyntaxError,
        RestartRejected,
        SourceChanged,
        StorageError,
        TransferAborted,
        TransferCoreError,
    )
    from .journal import Journal, JournalEntry, JournalError, TransferState
    from .location import Location, parse_location
    from .options import OptionSpec
    from .ranges import ByteRange, RangeSet, parse_stream_offset
    from .registry import DriverInfo, Endpoint, list_drivers, open_location

#: Where each public name lives: importing a light module (``transfercore.contract``) loads
#: neither the engine nor SQLite nor stevedore, and ``import transfercore`` costs nothing until used.
_EXPORTS: dict[str, tuple[str, ...]] = {
    ".errors": (
        "errors", "CapabilityError", "ChecksumMismatch", "DriverLoadError", "DriverNotFound", "InvalidRead",
        "InvalidWrite", "LocationError", "NotFound", "OptionError", "RangeSyntaxError", "RestartRejected",
        "SourceChanged", "StorageError", "TransferAborted", "TransferCoreError",
    ),
    ".capabilities": ("Capabilities", "RestartModel"),
    ".contract": ("Driver", "ObjectInfo", "Reader", "Writer"),
    ".engine": (
        "AsyncTransfer", "MarkerPolicy", "Transfer", "TransferOptions", "TransferResult", "copy", "copy_async",
        "events", "Done", "Event", "Failed", "Interrupted", "Listener", "Marker", "Progress", "Restarted",
        "Resumed", "Started", "UpToDate", "Verifying", "VerifyProgress",
    ),
    ".journal": ("Journal", "JournalEntry", "JournalError", "TransferState"),
    ".location": ("Location", "parse_location"),
    ".options": ("OptionSpec",),
    ".ranges": ("ByteRange", "RangeSet", "parse_stream_offset"),
    ".registry": ("DriverInfo", "Endpoint", "list_drivers", "open_location"),
}
__version__ = "0.1.0"

__all__ = [
    "AsyncTransfer",
    "ByteRange",
    "Capabilities",
    "CapabilityError",
    "ChecksumMismatch",
    "Done",
    "Driver",
    "DriverInfo",
    "DriverLoadError",
    "DriverNotFound",
    "Endpoint",
    "Event",
    "Failed",
    "Interrupted",
    "InvalidRead",
    "InvalidWrite",
    "Journal",
    "JournalEntry",
    "JournalError",
    "Listener",
    "Location",
    "LocationError",
    "Marker",
    "MarkerPolicy",
    "NotFound",
    "ObjectInfo",
    "OptionError",
    "OptionSpec",
    "Progress",
    "RangeSet",
    "RangeSyntaxError",
    "Reader",
    "RestartModel",
    "RestartRejected",
    "Restarted",
    "Resumed",
    "SourceChanged",
    "Started",
    "StorageError",
    "Transfer",
    "TransferAborted",
    "TransferCoreError",
    "TransferOptions",
    "TransferResult",
    "TransferState",
    "UpToDate",
    "VerifyProgress",
    "Verifying",
    "Writer",
    "copy",
    "copy_async",
    "errors",
    "events",
    "list_drivers",
    "open_location",
    "parse_location",
    "parse_stream_offset",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals(), __all__)
