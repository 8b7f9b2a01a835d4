"""What every driver needs: the argument checks, the standard errors and the small durable steps.

A driver imports these instead of writing its own, so that every driver
rejects the same bad input with the same error and words:

* :func:`check_open_write`, :func:`check_write`, :func:`check_read`,
  :func:`check_resume`: the arguments of ``open_write``, ``write``, ``read``
  and a resume marker against the driver's durable record;
* :func:`overlap_error`, :func:`never_written_error`, :func:`read_exact`: a
  write over bytes already written, a ``complete()`` with bytes missing, a
  read that returned fewer bytes than the object holds
  (:class:`~transfercore.errors.ShortRead`);
* :func:`fsync_dir` (make a directory's new, renamed or removed names
  durable) and :func:`new_token` (a name part no other write uses);
* :class:`Intervals`: a mutable range set for the write path, where the
  immutable :class:`~transfercore.ranges.RangeSet` would be rebuilt per write;
* :func:`checksum_range`: the checksum of a reader's bytes (all, or a range),
  over :func:`transfercore.checksums.checksum_reader`.

Option defaults need nothing here: :class:`~transfercore.contract.Driver`
fills ``self.settings`` from the declared options' defaults once.
"""

from __future__ import annotations

import bisect
import errno
import os
import secrets
import stat

from .checksums import checksum_reader
from .contract import Reader, check_read, check_resume, check_write
from .errors import InvalidWrite, NotADirectory, NotFound, ShortRead, from_oserror
from .ranges import ByteRange, RangeSet

__all__ = [
    "Intervals",
    "check_open_write",
    "check_parent_directory",
    "check_read",
    "check_resume",
    "check_write",
    "checksum_range",
    "fsync_dir",
    "never_written_error",
    "new_token",
    "overlap_error",
    "read_exact",
]

#: Hex digits of :func:`new_token`.
TOKEN_HEX = 16


# -- the checks -------------------------------------------------------------------


def check_open_write(size: object, resume: object, where: str) -> RangeSet | None:
    """Check the arguments of ``Driver.open_write``; return the marker to resume, None for a fresh write.

    :class:`~transfercore.errors.InvalidWrite` for a size that is not a
    non-negative whole number or a marker that is not a ``RangeSet``.  An
    empty marker means a fresh write, as ``None`` does.
    """
    if type(size) is not int or size < 0:
        raise InvalidWrite(f"size {size!r} of {where} is not a non-negative whole number")
    if resume is not None and not isinstance(resume, RangeSet):
        raise InvalidWrite(f"resume marker for {where} must be a RangeSet, not {type(resume).__name__}")
    return resume if resume else None


# -- the standard errors ------------------------------------------------------------


def check_parent_directory(directory: str, path: str) -> None:
    """That the local ``directory`` an object ``path`` is written into exists and is a directory.

    Missing directories are never created for the caller: :class:`NotFound`
    says to create it; a file in its place is :class:`NotADirectory`.
    """
    try:
        st = os.stat(directory)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise NotFound(
                f"the directory of {path} does not exist",
                errno=exc.errno,
                hint="create the directory first; missing directories are not created for you",
            ) from None
        raise from_oserror(exc, f"cannot reach the directory of {path}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectory(f"the parent of {path} is not a directory", errno=errno.ENOTDIR)


def overlap_error(where: str, offset: int, end: int) -> InvalidWrite:
    """A write of ``[offset, end)`` over bytes already written or resumed."""
    return InvalidWrite(
        f"write {offset}-{end} to {where} overlaps bytes already written or resumed",
        hint="write each byte once; resume only the missing ranges",
    )


def never_written_error(where: str, missing: RangeSet) -> InvalidWrite:
    """``complete()`` while the bytes ``missing`` were never written."""
    return InvalidWrite(
        f"cannot complete {where}: bytes {missing} were never written",
        hint="write the missing ranges, then complete again",
    )


def read_exact(data: bytes, offset: int, wanted: int, where: str) -> bytes:
    """``data`` when it holds the ``wanted`` bytes read at ``offset``; else :class:`ShortRead`."""
    if len(data) != wanted:
        raise ShortRead(where, offset, len(data), wanted)
    return data


# -- durable steps --------------------------------------------------------------------


def fsync_dir(directory: str) -> None:
    """Make the entries of ``directory`` (created, renamed, removed names) durable."""
    _fsync_opened(directory, os.O_RDONLY | os.O_DIRECTORY, f"directory {directory}")


def fsync_inode(path: str, what: str) -> None:
    """Make the inode at ``path`` (its data and attributes) durable; a link is never followed."""
    _fsync_opened(path, os.O_RDONLY | os.O_NOFOLLOW, what)


def _fsync_opened(path: str, flags: int, what: str) -> None:
    try:
        fd = os.open(path, flags | os.O_CLOEXEC)
    except OSError as exc:
        raise from_oserror(exc, f"cannot open {what} to sync it") from exc
    try:
        os.fsync(fd)
    except OSError as exc:
        raise from_oserror(exc, f"cannot sync {what}") from exc
    finally:
        os.close(fd)


def new_token() -> str:
    """A random name part (16 hex digits) that tells one write of an object from another."""
    return secrets.token_hex(TOKEN_HEX // 2)


# -- a mutable range set ----------------------------------------------------------------


class Intervals:
    """A mutable set of byte ranges for the write path.

    :class:`~transfercore.ranges.RangeSet` is immutable, so adding one write
    costs a rebuild proportional to the number of ranges.  This form keeps two
    sorted lists of starts and ends, merged with neighbours on insert:
    mostly-contiguous writes keep it at a handful of entries, and each insert
    is a binary search plus, at worst, a list insert.  Not thread-safe: hold
    the writer's lock around every call.
    """

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

    def end(self) -> int:
        """One past the last byte in the set (0 when empty)."""
        return self._ends[-1] if self._ends else 0

    def __len__(self) -> int:
        return len(self._starts)

    def to_rangeset(self) -> RangeSet:
        return RangeSet(tuple(ByteRange(s, e) for s, e in zip(self._starts, self._ends, strict=True)))


# -- checksums --------------------------------------------------------------------------


class _Window(Reader):
    """Bytes ``[start, end)`` of a reader, as a reader of ``end - start`` bytes."""

    def __init__(self, reader: Reader, start: int, end: int) -> None:
        self._reader, self._start, self._size = reader, start, end - start

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        return self._reader.read(self._start + offset, min(length, self._size - offset))


def checksum_range(
    reader: Reader,
    algorithm: str,
    start: int = 0,
    end: int | None = None,
    *,
    block_size: int = 4 * 1024 * 1024,
    parallel: int = 1,
) -> str:
    """The ``algorithm`` checksum (lowercase hex) of bytes ``[start, end)`` of ``reader`` (all by default).

    Reads ``block_size`` at a time, ``parallel`` reads ahead (1 for storage
    that reads in order); a short read raises :class:`ShortRead`.
    """
    stop = reader.size if end is None else end
    if not 0 <= start <= stop <= reader.size:
        raise ValueError(f"range {start}-{stop} is not within the object's {reader.size} bytes")
    source = reader if (start, stop) == (0, reader.size) else _Window(reader, start, stop)
    return checksum_reader(source, algorithm, block_size=block_size, parallel=parallel)
