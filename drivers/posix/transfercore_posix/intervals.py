"""A mutable set of byte intervals for the write fast path.

:class:`~transfercore.ranges.RangeSet` is immutable, so adding one write costs
a rebuild proportional to the number of ranges.  Writes arrive one block at a
time from several threads, so the writer keeps this mutable form instead:
two sorted lists of starts and ends, merged with neighbours on insert.
Mostly-contiguous writes keep it at a handful of entries; each insert is a
binary search plus, at worst, a list insert.  Not thread-safe: the writer
holds its lock around every call.
"""

from __future__ import annotations

import bisect

from transfercore.ranges import ByteRange, RangeSet


class Intervals:
    __slots__ = ("_starts", "_ends")

    def __init__(self, ranges: RangeSet | None = None) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for r in ranges or ():
            self._starts.append(r.start)
            self._ends.append(r.end)

    def overlaps(self, start: int, end: int) -> bool:
        """Whether ``[start, end)`` shares a byte with the set."""
        if end <= start:
            return False
        i = bisect.bisect_right(self._starts, start) - 1
        if i >= 0 and self._ends[i] > start:
            return True
        j = i + 1
        return j < len(self._starts) and self._starts[j] < end

    def add(self, start: int, end: int) -> None:
        """Add ``[start, end)``, merging with touching neighbours."""
        if end <= start:
            return
        starts, ends = self._starts, self._ends
        # First interval whose end reaches start, last whose start reaches end.
        lo = bisect.bisect_left(ends, start)
        hi = bisect.bisect_right(starts, end)
        if lo < hi:
            start = min(start, starts[lo])
            end = max(end, ends[hi - 1])
            starts[lo:hi] = [start]
            ends[lo:hi] = [end]
        else:
            starts.insert(lo, start)
            ends.insert(lo, end)

    def covers(self, start: int, end: int) -> bool:
        """Whether every byte of ``[start, end)`` is in the set."""
        if end <= start:
            return True
        i = bisect.bisect_right(self._starts, start) - 1
        return i >= 0 and self._ends[i] >= end

    def total(self) -> int:
        return sum(e - s for s, e in zip(self._starts, self._ends, strict=True))

    def __len__(self) -> int:
        return len(self._starts)

    def to_rangeset(self) -> RangeSet:
        return RangeSet(tuple(ByteRange(s, e) for s, e in zip(self._starts, self._ends, strict=True)))
