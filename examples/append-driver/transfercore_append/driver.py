"""Local files written front to back; the restart marker is the fsynced prefix.

An unfinished object ``name`` lives as ``.name.partial`` beside a record
``.name.record`` (JSON: size and durable length).  ``durable()`` fsyncs the
data first and then replaces the record, so the record never claims bytes the
disk does not hold.  ``complete()`` renames the partial file to its final name
and fsyncs the directory, so a truncated object never shows under that name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import ClassVar

from transfercore.capabilities import Capabilities, RestartModel
from transfercore.contract import Driver, ObjectInfo, Reader, Writer
from transfercore.driverkit import (
    check_open_write,
    check_read,
    check_write,
    fsync_dir,
    never_written_error,
    read_exact,
)
from transfercore.errors import (
    InvalidRead,
    InvalidWrite,
    NotFound,
    RestartRejected,
    StorageError,
    WriterClosed,
)
from transfercore.options import OptionSpec
from transfercore.ranges import RangeSet


def _names(path: str) -> tuple[str, str, str]:
    directory, name = os.path.split(path)
    return path, os.path.join(directory, f".{name}.partial"), os.path.join(directory, f".{name}.record")


def _load_record(record_path: str) -> dict[str, int] | None:
    try:
        with open(record_path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None


def _store_record(record_path: str, size: int, durable: int) -> None:
    tmp = record_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"size": size, "durable": durable}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, record_path)
    # one directory fsync makes the record's name and the partial file's name durable
    fsync_dir(os.path.dirname(record_path))


class AppendWriter(Writer):
    def __init__(self, path: str, size: int, fd: int, offset: int) -> None:
        self._final, self._partial, self._record = _names(path)
        self._size = size
        self._fd: int | None = fd
        self._next = offset  # the next offset the storage accepts
        self._resumed = RangeSet.span(0, offset) if offset else RangeSet()
        self._marker = self._resumed

    @property
    def size(self) -> int:
        return self._size

    @property
    def resumed(self) -> RangeSet:
        return self._resumed

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        if self._fd is None:
            raise WriterClosed(f"{self._final}: the writer is closed", hint="open a new writer to resume")
        view = memoryview(data)
        check_write(offset, view.nbytes, self._size, self._final)
        if offset != self._next:
            raise InvalidWrite(
                f"{self._final}: write at {offset}, but this driver accepts only the next offset {self._next}",
                hint="send blocks in ascending order without holes",
            )
        while view:
            done = os.pwrite(self._fd, view, offset)
            view, offset = view[done:], offset + done
        self._next = offset

    def durable(self) -> RangeSet:
        if self._fd is None:
            raise WriterClosed(f"{self._final}: the writer is closed")
        os.fdatasync(self._fd)
        _store_record(self._record, self._size, self._next)
        self._marker = RangeSet.span(0, self._next) if self._next else RangeSet()
        return self._marker

    def read_durable(self, offset: int, buffer: bytearray | memoryview) -> None:
        """Fill ``buffer`` with the partial file's bytes at ``offset``, inside the latest marker.

        The bytes come from the file system, as any reader of the file gets
        them, not from a copy of what was written; the engine compares them
        with the source before ``complete()`` gives the object its name.
        """
        view = memoryview(buffer).cast("B")
        if type(offset) is not int or offset < 0 or offset + view.nbytes > self._size:
            raise InvalidRead(f"{self._final}: read-back {offset!r}+{view.nbytes} is outside 0-{self._size}")
        if self._fd is None:
            raise WriterClosed(f"{self._final}: the writer is closed")
        if view.nbytes and offset + view.nbytes > self._marker.prefix_end():
            raise InvalidWrite(
                f"{self._final}: read-back {offset}-{offset + view.nbytes} is not inside the durable marker "
                f"{self._marker or '(empty)'}",
                hint="read back only bytes a durable() call returned",
            )
        got = 0
        while got < view.nbytes:
            n = os.preadv(self._fd, [view[got:]], offset + got)
            if n == 0:
                raise StorageError(f"{self._final}: the partial file ends at {offset + got}, inside its marker")
            got += n

    def complete(self) -> None:
        if self._fd is None:
            raise WriterClosed(f"{self._final}: the writer is closed")
        if self._next != self._size:
            raise never_written_error(self._final, RangeSet.span(self._next, self._size))
        os.fdatasync(self._fd)
        os.close(self._fd)
        self._fd = None
        os.replace(self._partial, self._final)
        fsync_dir(os.path.dirname(self._final))
        if os.path.exists(self._record):
            os.unlink(self._record)

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class AppendReader(Reader):
    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._size = os.fstat(self._fd).st_size

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        check_read(offset, length, self._size, "an append object")  # InvalidRead for bad offsets
        want = min(length, self._size - offset)
        return read_exact(os.pread(self._fd, want, offset), offset, want, "an append object")

    def close(self) -> None:
        os.close(self._fd)


class AppendDriver(Driver):
    name: ClassVar[str] = "append"
    options: ClassVar[Mapping[str, OptionSpec]] = {}

    def capabilities(self) -> Capabilities:
        # read_back: writers offer read_durable(), so the engine verifies before publishing.
        return Capabilities(restart=RestartModel.PREFIX, ordered_writes=True, max_writers=1,
                            atomic_publish=True, read_back=True, preferred_block_size=1024 * 1024)

    def local_path(self, path: str) -> str:
        """Objects are local files: the conformance kit also tests this driver under power loss."""
        return path

    def stat(self, path: str) -> ObjectInfo:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise NotFound(f"{path} does not exist") from None
        return ObjectInfo(path=path, size=st.st_size, mtime_ns=st.st_mtime_ns, identity=f"{st.st_ino}")

    def open_write(self, path: str, size: int, resume: RangeSet | None = None) -> Writer:
        resume = check_open_write(size, resume, path)
        final, partial, record_path = _names(path)
        if not os.path.isdir(os.path.dirname(final)):
            raise NotFound(f"the directory of {path} does not exist")
        if not resume:
            self.discard_partial(path)
            fd = os.open(partial, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            return AppendWriter(path, size, fd, 0)
        record = _load_record(record_path)
        if record is None or record["size"] != size:
            raise RestartRejected(f"cannot resume {path}: no durable record for an object of size {size}")
        if resume.prefix_end() != resume.total() or resume.end() > record["durable"]:
            raise RestartRejected(f"cannot resume {path}: the storage holds only the prefix 0-{record['durable']}")
        try:
            fd = os.open(partial, os.O_RDWR)
        except FileNotFoundError:
            raise RestartRejected(f"cannot resume {path}: the partial file is gone") from None
        os.ftruncate(fd, resume.end())  # bytes after the marker are rewritten by the caller
        return AppendWriter(path, size, fd, resume.end())

    def open_read(self, path: str) -> Reader:
        try:
            return AppendReader(path)
        except FileNotFoundError:
            raise NotFound(f"{path} does not exist") from None

    def partial(self, path: str) -> RangeSet:
        record = _load_record(_names(path)[2])
        return RangeSet.span(0, record["durable"]) if record and record["durable"] else RangeSet()

    def discard_partial(self, path: str) -> None:
        for name in _names(path)[1:]:
            if os.path.exists(name):
                os.unlink(name)

    def remove(self, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            raise NotFound(f"{path} does not exist") from None
