"""The options of one transfer, as a frozen record."""

from __future__ import annotations

from typing import Any

import attrs

from ..checksums import DEFAULT_ALGORITHM, canonical
from ..errors import OptionError
from .policy import MarkerPolicy

DEFAULT_STREAMS = 4
MAX_STREAMS = 256
#: Largest block accepted: blocks are held in memory, streams at a time.
MAX_BLOCK_SIZE = 1 << 30


def _streams(value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_STREAMS:
        raise OptionError(f"streams {value!r} must be a whole number from 1 to {MAX_STREAMS}")
    return value


def _block_size(value: int | None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_BLOCK_SIZE:
        raise OptionError(f"block size {value!r} must be from 1 byte to 1 GiB")
    return value


def _checksum(value: str | None) -> str | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    return canonical(value)


def _positive_float(value: float) -> float:
    value = float(value)
    if not value > 0:
        raise OptionError(f"progress interval {value} must be more than 0 seconds")
    return value


@attrs.frozen
class TransferOptions:
    """How one transfer runs.  Change one with ``attrs.evolve(options, streams=8)``."""

    #: Blocks in flight at once (threads).  Memory stays near streams x block size.
    streams: int = attrs.field(default=DEFAULT_STREAMS, converter=_streams)
    #: Block size in bytes; None uses the destination's preferred size.
    block_size: int | None = attrs.field(default=None, converter=_block_size)
    marker_policy: MarkerPolicy = attrs.field(factory=MarkerPolicy)
    #: Whole-object checksum algorithm (canonical name), or None to skip verification.
    checksum: str | None = attrs.field(default=DEFAULT_ALGORITHM, converter=_checksum)
    #: Resume from the journal's marker when one fits; False always starts from zero.
    resume: bool = True
    #: Copy again even when a finished copy's destination still matches the journal.
    force: bool = False
    #: Seconds between progress events.
    progress_interval: float = attrs.field(default=0.5, converter=_positive_float)

    def to_dict(self) -> dict[str, Any]:
        return {
            "streams": self.streams,
            "block_size": self.block_size,
            "marker_interval": self.marker_policy.interval,
            "marker_bytes": self.marker_policy.bytes,
            "checksum": self.checksum,
            "resume": self.resume,
            "force": self.force,
        }
