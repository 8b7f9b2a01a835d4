"""transfercore: resumable data transfers that never leave a silent gap.

Everything an embedding service or a driver needs is importable from here::

    import transfercore

    with transfercore.Journal() as journal:
        result = transfercore.copy("posix:///data/in", "posix:///backup/in", journal=journal)

See ``docs/embedding.md`` (services) and ``docs/writing-a-driver.md`` (drivers).
"""

from . import errors
from .capabilities import Capabilities, RestartModel
from .contract import Driver, ObjectInfo, Reader, Writer
from .engine import (
    AsyncTransfer,
    MarkerPolicy,
    Transfer,
    TransferOptions,
    TransferResult,
    copy,
    copy_async,
    events,
)
from .engine.events import (
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
from .journal import Journal, JournalEntry, JournalError, State
from .location import Location, parse_location
from .options import OptionSpec
from .ranges import ByteRange, RangeSet, parse_stream_offset
from .registry import DriverInfo, Endpoint, list_drivers, open_location

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
    "State",
    "StorageError",
    "Transfer",
    "TransferAborted",
    "TransferCoreError",
    "TransferOptions",
    "TransferResult",
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
