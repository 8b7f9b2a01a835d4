"""What one download sends: decisions without I/O."""

from __future__ import annotations

import attrs

from ..ranges import RangeSet
from .actions import Retrieve
from .errors import ReplyError


@attrs.frozen
class RetrievePlan:
    #: The bytes of the object to send.
    ranges: RangeSet
    #: ERET: offsets on the wire are relative to this file offset.
    base: int = 0

    @property
    def start(self) -> int:
        return self.ranges.ranges[0].start if self.ranges else 0

    @property
    def end(self) -> int:
        return self.ranges.end() if self.ranges else 0


def plan_retrieve(act: Retrieve, size: int) -> RetrievePlan:
    """The bytes to send of an object of ``size`` bytes, or :class:`ReplyError` 501."""
    base = 0
    if act.window is not None:
        offset, length = act.window
        if offset > size:
            raise ReplyError(501, f"ERET offset {offset} is past the end ({size} bytes).")
        base = offset
        ranges = RangeSet.span(offset, min(size, offset + length))
    else:
        ranges = RangeSet.span(0, size)
    if act.restart:
        held = act.restart.end()
        if held > size and act.window is None:
            # A restart past the end is a client's mistake, not "nothing left to send":
            # 150/226 with no data would let it believe it holds bytes that do not exist.
            raise ReplyError(
                554, f"Restart offset {held} is beyond the end of the file ({size} bytes); nothing was sent."
            )
        ranges = ranges - act.restart
    if act.mode == "S" and len(ranges) > 1:
        raise ReplyError(501, "MODE S can only resume from an offset; use MODE E for range lists.")
    return RetrievePlan(ranges, base)


__all__ = ["RetrievePlan", "plan_retrieve"]


def checksum_span(offset: int, length: int | None, size: int) -> tuple[int, int]:
    """``[start, end)`` of ``CKSM <alg> offset length`` on an object of ``size`` bytes (501 past the end)."""
    if offset > size:
        raise ReplyError(501, f"CKSM offset {offset} is past the end ({size} bytes).")
    return offset, size if length is None else min(size, offset + length)
