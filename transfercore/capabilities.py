"""What a driver promises: a frozen record the engine and services plan from."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

import attrs

from .errors import CapabilityError


class RestartModel(enum.Enum):
    """How a destination can resume an interrupted write."""

    #: Any set of ranges can be durable and resumed (POSIX files with parallel writers).
    RANGES = "ranges"
    #: Only a contiguous prefix ``[0, n)`` (HPSS PIO: a segment's bytes moved).
    PREFIX = "prefix"
    #: No restart: a resume starts again from zero.
    NONE = "none"


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise CapabilityError(f"capability {attribute.name} must be at least 1, not {value}")


def _names(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


@attrs.frozen
class Capabilities:
    """A driver's declared abilities.  The conformance kit opts out of a
    clause only because of what is declared here, never because a check fails."""

    restart: RestartModel = RestartModel.RANGES
    #: True when writes must arrive in ascending offset order with no holes
    #: (the engine then serialises delivery).
    ordered_writes: bool = False
    #: How many threads may call ``Writer.write`` at once.
    max_writers: int = attrs.field(default=1, validator=_positive)
    preferred_block_size: int = attrs.field(default=4 * 1024 * 1024, validator=_positive)
    min_block_size: int = attrs.field(default=1, validator=_positive)
    #: A new restart point comes only after about this many more bytes (and
    #: at the object's end): HPSS reports one per executed segment.
    marker_granularity: int = attrs.field(default=1, validator=_positive)
    #: Checksum algorithms (canonical names, see :mod:`transfercore.checksums`)
    #: the storage computes itself, faster than reading back.
    checksums: frozenset[str] = attrs.field(default=frozenset(), converter=_names)
    #: True when a partial object is never visible under its final name.
    atomic_publish: bool = False
    #: True when ``Driver.simulate_crash()`` can drop non-durable state in process.
    crash_simulation: bool = False
    #: True when ``Writer.read_durable()`` reads durable bytes back before the
    #: object is published: the engine then verifies in step with the transfer
    #: and never publishes an object that fails verification.  Without it the
    #: object is verified only after it is published.
    read_back: bool = False
    #: True when independent writers (threads, processes, hosts sharing the
    #: storage) may each write a disjoint range of one object through
    #: ``Driver.open_range_write`` and make it durable on their own; the
    #: object's durable ranges are the union of theirs, read back from the
    #: storage, and ``Driver.publish_ranges`` publishes it once.
    range_writers: bool = False

    def __attrs_post_init__(self) -> None:
        if self.min_block_size > self.preferred_block_size:
            raise CapabilityError(
                f"min_block_size {self.min_block_size} is larger than "
                f"preferred_block_size {self.preferred_block_size}"
            )
        if self.ordered_writes and self.max_writers != 1:
            raise CapabilityError("a driver that needs ordered writes must declare max_writers=1")
        if self.read_back and self.restart is RestartModel.NONE:
            raise CapabilityError(
                "a driver with restart model none cannot declare read_back: read_durable() reads only "
                "inside the latest marker, and such a driver has none"
            )

        if self.range_writers and (self.restart is not RestartModel.RANGES or self.ordered_writes):
            raise CapabilityError(
                "a driver with range_writers must declare restart model ranges and no ordered_writes: "
                "independent writers make disjoint ranges durable in any order"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view, for ``transfercore drivers --json``."""
        out = attrs.asdict(self)
        out["restart"] = self.restart.value
        out["checksums"] = sorted(self.checksums)
        return out
