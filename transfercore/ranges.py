"""Byte ranges and range sets, and the GridFTP range-list syntax.

A restart marker is a *set* of byte ranges, not an offset: parallel and
out-of-order writes leave holes.  :class:`RangeSet` is immutable and always
normalized (sorted, non-overlapping, non-adjacent, no empty ranges), so two
sets holding the same bytes compare equal.

Ranges are half-open, ``[start, end)``, as in GridFTP's ``111 Range Marker``
and ``REST a-b`` (end exclusive).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

import attrs

from .errors import RangeSyntaxError

#: Largest offset accepted anywhere: GridFTP and most storage use signed 64-bit offsets.
MAX_OFFSET = 2**63 - 1

#: A range list longer than this is refused when parsed: no honest peer needs it,
#: and a hostile one could otherwise make every later set operation slow.
DEFAULT_MAX_RANGES = 10_000

_MAX_DIGITS = len(str(MAX_OFFSET))


def _check_offset(value: int, what: str) -> None:
    if value < 0:
        raise RangeSyntaxError(f"{what} {value} is negative")
    if value > MAX_OFFSET:
        raise RangeSyntaxError(f"{what} {value} is larger than the largest offset {MAX_OFFSET}")


@attrs.frozen(order=True)
class ByteRange:
    """The bytes ``[start, end)``."""

    start: int
    end: int

    def __attrs_post_init__(self) -> None:
        # one comparison for the ranges every transfer builds; the reasons only for a bad one
        if not 0 <= self.start <= self.end <= MAX_OFFSET:
            _check_offset(self.start, "range start")
            _check_offset(self.end, "range end")
            raise RangeSyntaxError(f"range {self.start}-{self.end} is reversed (end before start)")

    @property
    def length(self) -> int:
        return self.end - self.start

    def __len__(self) -> int:
        return self.end - self.start

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


def _normalize(ranges: Iterable[ByteRange]) -> tuple[ByteRange, ...]:
    if type(ranges) is tuple and _is_normal(ranges):
        # what the algebra below builds is normal already: checked, not sorted again
        return ranges
    out: list[ByteRange] = []
    for r in sorted(r for r in ranges if r.end > r.start):
        if out and r.start <= out[-1].end:
            if r.end > out[-1].end:
                out[-1] = ByteRange(out[-1].start, r.end)
        else:
            out.append(r)
    return tuple(out)


def _is_normal(ranges: tuple[ByteRange, ...]) -> bool:
    """Sorted, non-overlapping, non-adjacent, no empty range."""
    end = -1
    for r in ranges:
        if r.start <= end or r.end <= r.start:
            return False
        end = r.end
    return True


@attrs.frozen
class RangeSet:
    """An immutable, normalized set of byte ranges."""

    ranges: tuple[ByteRange, ...] = attrs.field(default=(), converter=_normalize)

    # -- construction ----------------------------------------------------------

    @classmethod
    def of(cls, *pairs: tuple[int, int]) -> RangeSet:
        """``RangeSet.of((0, 10), (20, 30))``."""
        return cls(tuple(ByteRange(a, b) for a, b in pairs))

    @classmethod
    def span(cls, start: int, end: int) -> RangeSet:
        """The single range ``[start, end)`` (empty when ``start == end``)."""
        return cls((ByteRange(start, end),))

    @classmethod
    def parse(cls, text: str, *, max_ranges: int = DEFAULT_MAX_RANGES) -> RangeSet:
        """Parse a GridFTP range list such as ``0-100,200-300`` (ends exclusive).

        Overlapping and repeated ranges are legal and merged, as GridFTP clients do.
        """
        if not isinstance(text, str):
            raise RangeSyntaxError(f"range list must be text, not {type(text).__name__}")
        stripped = text.strip()
        if not stripped:
            raise RangeSyntaxError("range list is empty; expected e.g. '0-100,200-300'")
        parts = stripped.split(",")
        if len(parts) > max_ranges:
            raise RangeSyntaxError(
                f"range list has {len(parts)} ranges, more than the limit of {max_ranges}"
            )
        ranges = []
        for part in parts:
            start_text, sep, end_text = part.partition("-")
            if not sep:
                raise RangeSyntaxError(f"range {part!r} has no '-'; expected 'start-end'")
            start = _parse_number(start_text, part)
            end = _parse_number(end_text, part)
            if end < start:
                raise RangeSyntaxError(f"range {part!r} is reversed (end before start)")
            ranges.append(ByteRange(start, end))
        return cls(tuple(ranges))

    # -- queries ---------------------------------------------------------------

    def __iter__(self) -> Iterator[ByteRange]:
        return iter(self.ranges)

    def __len__(self) -> int:
        return len(self.ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def __str__(self) -> str:
        """The GridFTP range-list form; the empty set formats as ``""``."""
        return ",".join(str(r) for r in self.ranges)

    def total(self) -> int:
        """Number of bytes in the set."""
        return sum(r.end - r.start for r in self.ranges)

    def end(self) -> int:
        """One past the last byte in the set (0 when empty)."""
        return self.ranges[-1].end if self.ranges else 0

    def prefix_end(self) -> int:
        """``n`` such that ``[0, n)`` is the longest contiguous prefix in the set."""
        if self.ranges and self.ranges[0].start == 0:
            return self.ranges[0].end
        return 0

    def prefix(self) -> RangeSet:
        """The contiguous prefix ``[0, prefix_end())``."""
        return RangeSet.span(0, self.prefix_end())

    def contains(self, item: int | ByteRange | RangeSet) -> bool:
        """Whether a byte offset, a range or a whole set lies inside this set."""
        if isinstance(item, int):
            return self._covering(item, item + 1)
        if isinstance(item, ByteRange):
            return item.length == 0 or self._covering(item.start, item.end)
        return all(self._covering(r.start, r.end) for r in item.ranges)

    def __contains__(self, item: int | ByteRange | RangeSet) -> bool:
        return self.contains(item)

    def _covering(self, start: int, end: int) -> bool:
        i = bisect.bisect_right(self.ranges, start, key=lambda r: r.start) - 1
        return i >= 0 and self.ranges[i].end >= end and self.ranges[i].start <= start

    # -- algebra ---------------------------------------------------------------

    # The empty operand is answered without building a set: every small file's upload
    # goes through a dozen of these with nothing resumed and nothing kept.

    def union(self, other: RangeSet | ByteRange) -> RangeSet:
        if isinstance(other, ByteRange):
            extra: tuple[ByteRange, ...] = (other,)
        else:
            if not other.ranges:
                return self
            if not self.ranges:
                return other
            extra = other.ranges
        return RangeSet(self.ranges + extra)

    def __or__(self, other: RangeSet | ByteRange) -> RangeSet:
        return self.union(other)

    def intersection(self, other: RangeSet) -> RangeSet:
        a, b = self.ranges, other.ranges
        if not a:
            return self
        if not b:
            return other
        out: list[ByteRange] = []
        i = j = 0
        while i < len(a) and j < len(b):
            lo = max(a[i].start, b[j].start)
            hi = min(a[i].end, b[j].end)
            if lo < hi:
                out.append(ByteRange(lo, hi))
            if a[i].end < b[j].end:
                i += 1
            else:
                j += 1
        return RangeSet(tuple(out))

    def __and__(self, other: RangeSet) -> RangeSet:
        return self.intersection(other)

    def difference(self, other: RangeSet) -> RangeSet:
        if not self.ranges or not other.ranges:
            return self
        out: list[ByteRange] = []
        b = other.ranges
        j = 0
        for r in self.ranges:
            start = r.start
            while j < len(b) and b[j].end <= start:
                j += 1
            k = j
            while k < len(b) and b[k].start < r.end:
                if b[k].start > start:
                    out.append(ByteRange(start, b[k].start))
                start = max(start, b[k].end)
                k += 1
            if start < r.end:
                out.append(ByteRange(start, r.end))
        return RangeSet(tuple(out))

    def __sub__(self, other: RangeSet) -> RangeSet:
        return self.difference(other)

    def complement(self, size: int) -> RangeSet:
        """The bytes of ``[0, size)`` not in this set: what is still missing."""
        return RangeSet.span(0, size).difference(self)

    def clip(self, size: int) -> RangeSet:
        """This set limited to ``[0, size)``."""
        return self.intersection(RangeSet.span(0, size))


def _parse_number(text: str, context: str) -> int:
    if not text:
        raise RangeSyntaxError(f"range {context!r} has an empty number")
    if not text.isascii() or not text.isdigit():
        raise RangeSyntaxError(f"range {context!r} holds {text!r}, which is not a non-negative number")
    if len(text.lstrip("0")) > _MAX_DIGITS:
        raise RangeSyntaxError(f"range {context!r} holds {text[:30]!r}, larger than the largest offset")
    value = int(text)
    if value > MAX_OFFSET:
        raise RangeSyntaxError(f"range {context!r} holds {value}, larger than the largest offset {MAX_OFFSET}")
    return value


def parse_stream_offset(text: str) -> int:
    """Parse a stream-mode restart offset (``REST 12345``)."""
    stripped = text.strip() if isinstance(text, str) else ""
    if not stripped:
        raise RangeSyntaxError("restart offset is empty; expected a non-negative number of bytes")
    return _parse_number(stripped, stripped)
