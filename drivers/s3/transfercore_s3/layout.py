"""Where each part of a multipart upload lies in the object (sans I/O).

S3 numbers parts 1 to 10,000; every part but the last is at least 5 MiB and
all of them here are the same size, so part ``n`` holds bytes
``[(n-1)*P, min(n*P, size))``.  That fixed layout is what lets a resume trust
the store's own list of parts: a part's number says where its bytes go, and
its listed size must be the size the layout gives it.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from transfercore.errors import OptionError
from transfercore.ranges import ByteRange, RangeSet

MiB = 1024 * 1024
#: The smallest part S3 accepts before the last one.
MIN_PART = 5 * MiB
#: The largest part and the most parts S3 accepts in one upload.
MAX_PART = 5 * 1024 * MiB
MAX_PARTS = 10_000
#: The part number that holds the upload's layout record, never published.
LAYOUT_PART = MAX_PARTS
#: Data parts are numbered below it.
MAX_DATA_PARTS = LAYOUT_PART - 1
#: The largest object S3 stores.
MAX_OBJECT = 5 * 1024 * 1024 * MiB


def check_part_size(part_size: int) -> None:
    if part_size < MIN_PART:
        raise OptionError(
            f"part size {part_size} bytes is below S3's minimum of 5 MiB",
            hint="give ?part_size=5MiB or more (the default is 8MiB)",
        )
    if part_size > MAX_PART:
        raise OptionError(f"part size {part_size} bytes is above S3's maximum of 5 GiB", hint="give ?part_size=5GiB or less")


@attrs.frozen
class Layout:
    """The parts of one object of ``size`` bytes cut in ``part_size`` pieces."""

    size: int
    part_size: int

    @classmethod
    def choose(cls, size: int, wanted: int) -> Layout:
        """The layout for ``size`` bytes: ``wanted`` per part, or more (whole MiB)
        when 9,999 parts of ``wanted`` would not hold the object."""
        check_part_size(wanted)
        if size > MAX_OBJECT:
            raise OptionError(f"{size} bytes is larger than the 5 TiB an S3 object can hold")
        needed = -(-size // MAX_DATA_PARTS)
        part = max(wanted, -(-needed // MiB) * MiB)
        return cls(size, part)

    @property
    def count(self) -> int:
        return max(1, -(-self.size // self.part_size))

    def span(self, number: int) -> tuple[int, int]:
        """The bytes ``[start, end)`` of part ``number`` (1-based)."""
        start = (number - 1) * self.part_size
        return start, min(start + self.part_size, self.size)

    def first(self, offset: int) -> int:
        """The number of the part that holds byte ``offset``."""
        return offset // self.part_size + 1

    def record(self) -> bytes:
        """The body of the layout part: what the upload was started for.

        S3 cannot attach anything readable to an unfinished upload, but it
        lists every part's size and ETag (the MD5 of its body).  Part 10,000
        holds this text; a resume compares its listed ETag with the MD5 of the
        text for the size it is given, and so refuses an upload started for
        another size or part size.  ``CompleteMultipartUpload`` names only the
        data parts, so the record is never part of the object.
        """
        return f"transfercore-s3 upload size={self.size} part_size={self.part_size}\n".encode()

    def ranges(self, numbers: Iterable[int]) -> RangeSet:
        """The bytes the parts ``numbers`` hold."""
        return RangeSet(tuple(ByteRange(*self.span(n)) for n in numbers))


def infer_part_size(sizes: dict[int, int], configured: int) -> int | None:
    """The part size of an upload from the sizes the store lists per part
    number, or None when they fit no single part size.  Every part but the
    highest-numbered must be full; the configured size stands in when no
    full part is listed."""
    if not sizes:
        return configured
    top = max(sizes)
    full = {size for number, size in sizes.items() if number != top}
    if len(full) > 1:
        return None
    if full:
        part = full.pop()
        return part if sizes[top] <= part else None
    return max(configured, sizes[top])
