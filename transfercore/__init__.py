"""transfercore: resumable data transfers that never leave a silent gap."""

from .capabilities import Capabilities, RestartModel
from .contract import Driver, ObjectInfo, Reader, Writer
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
    StorageError,
    TransferCoreError,
)
from .location import Location, parse_location
from .options import OptionSpec
from .ranges import ByteRange, RangeSet, parse_stream_offset
from .registry import DriverInfo, Endpoint, list_drivers, open_location

__version__ = "0.1.0"

__all__ = [
    "ByteRange",
    "Capabilities",
    "CapabilityError",
    "ChecksumMismatch",
    "Driver",
    "DriverInfo",
    "DriverLoadError",
    "DriverNotFound",
    "Endpoint",
    "InvalidRead",
    "InvalidWrite",
    "Location",
    "LocationError",
    "NotFound",
    "ObjectInfo",
    "OptionError",
    "OptionSpec",
    "RangeSet",
    "RangeSyntaxError",
    "Reader",
    "RestartModel",
    "RestartRejected",
    "StorageError",
    "TransferCoreError",
    "Writer",
    "list_drivers",
    "open_location",
    "parse_location",
    "parse_stream_offset",
]
