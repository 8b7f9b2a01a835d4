"""A mock store kept in a directory, shared by every process that names it.

Layout under ``<dir>/<store name>/``::

    objects/<quoted path>          complete objects
    partials/<quoted path>.data    durable bytes of unfinished objects
    partials/<quoted path>.json    their resume records
    dirs/<quoted path>             explicitly created directories
    lock                           flock, taken around every operation

What a process has in memory and did not make durable is lost when it dies,
which is exactly the mock's crash model; nothing here is fsynced because the
mock models a crash of the writing process, and the kernel keeps written file
data across that.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterable, Iterator

from transfercore.driverkit import new_token
from transfercore.errors import NotFound, StorageError, from_oserror
from transfercore.ranges import RangeSet

from .records import ObjectMeta, PartialRecord
from .store import Chunk, MockStore, ObjectHandle, _replaced


def _q(path: str) -> str:
    return urllib.parse.quote(path, safe="")


def _unq(name: str) -> str:
    return urllib.parse.unquote(name)


class _FileHandle:
    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.size = os.fstat(fd).st_size

    def read(self, offset: int, length: int) -> bytes:
        parts = []
        while length > 0:
            chunk = os.pread(self._fd, length, offset)
            if not chunk:
                break
            parts.append(chunk)
            offset += len(chunk)
            length -= len(chunk)
        return b"".join(parts)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class DirStore(MockStore):
    def __init__(self, name: str, directory: str, *, owned: bool = False) -> None:
        super().__init__(name)
        self.base = os.path.join(directory, _q(name) or "_")
        self._owned = owned
        try:
            for sub in ("objects", "partials", "dirs"):
                os.makedirs(os.path.join(self.base, sub), exist_ok=True)
        except OSError as exc:
            raise from_oserror(exc, f"cannot use {directory} for mock store {name!r}") from exc

    @classmethod
    def temporary(cls, name: str) -> DirStore:
        """A store in a fresh temporary directory, removed by :meth:`cleanup`."""
        return cls(name, tempfile.mkdtemp(prefix="transfercore-mock-"), owned=True)

    def cleanup(self) -> None:
        if self._owned:
            shutil.rmtree(os.path.dirname(self.base), ignore_errors=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self.lock:
            fd = os.open(os.path.join(self.base, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def _obj(self, path: str) -> str:
        return os.path.join(self.base, "objects", _q(path))

    def _pdata(self, path: str) -> str:
        return os.path.join(self.base, "partials", _q(path) + ".data")

    def _prec(self, path: str) -> str:
        return os.path.join(self.base, "partials", _q(path) + ".json")

    # -- objects -------------------------------------------------------------------

    def object_meta(self, path: str) -> ObjectMeta | None:
        try:
            st = os.stat(self._obj(path))
        except FileNotFoundError:
            return None
        return ObjectMeta(size=st.st_size, mtime_ns=st.st_mtime_ns, identity=f"{st.st_dev}:{st.st_ino}")

    def object_open(self, path: str) -> ObjectHandle:
        try:
            fd = os.open(self._obj(path), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"{path} does not exist in mock store {self.name!r}", errno=2) from None
        return _FileHandle(fd)

    def object_delete(self, path: str) -> bool:
        with self._locked():
            try:
                os.unlink(self._obj(path))
            except FileNotFoundError:
                return False
            return True

    def object_rename(self, src: str, dst: str) -> None:
        with self._locked():
            try:
                os.replace(self._obj(src), self._obj(dst))
            except FileNotFoundError:
                raise NotFound(f"{src} does not exist in mock store {self.name!r}", errno=2) from None

    def object_paths(self) -> list[str]:
        return [_unq(n) for n in os.listdir(os.path.join(self.base, "objects"))]

    # -- directories -------------------------------------------------------------------

    def dir_paths(self) -> set[str]:
        return {_unq(n) for n in os.listdir(os.path.join(self.base, "dirs"))}

    def dir_add(self, path: str) -> None:
        with self._locked():
            open(os.path.join(self.base, "dirs", _q(path)), "wb").close()

    def dir_remove(self, path: str) -> None:
        with self._locked(), contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.base, "dirs", _q(path)))

    # -- partial objects ---------------------------------------------------------------

    def _read_record(self, path: str) -> PartialRecord | None:
        try:
            with open(self._prec(path), encoding="utf-8") as handle:
                doc = json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StorageError(f"the resume record of {path} in mock store {self.name!r} is unreadable: {exc}") from None
        ranges = RangeSet.parse(doc["ranges"]) if doc["ranges"] else RangeSet()
        return PartialRecord(size=doc["size"], ranges=ranges, token=doc["token"])

    def _write_record(self, path: str, record: PartialRecord) -> None:
        temp = self._prec(path) + ".tmp"
        with open(temp, "w", encoding="utf-8") as handle:
            json.dump({"size": record.size, "ranges": str(record.ranges), "token": record.token}, handle)
        os.replace(temp, self._prec(path))

    def _check(self, path: str, token: str) -> PartialRecord:
        record = self._read_record(path)
        if record is None or record.token != token:
            raise _replaced(path)
        return record

    def partial_record(self, path: str) -> PartialRecord | None:
        with self._locked():
            return self._read_record(path)

    def partial_begin(self, path: str, size: int) -> PartialRecord:
        record = PartialRecord(size=size, ranges=RangeSet(), token=new_token())
        with self._locked():
            with open(self._pdata(path), "wb") as handle:
                handle.truncate(size)
            self._write_record(path, record)
        return record

    def partial_apply(self, path: str, token: str, chunks: Iterable[Chunk]) -> None:
        with self._locked():
            self._check(path, token)
            fd = os.open(self._pdata(path), os.O_WRONLY | os.O_CLOEXEC)
            try:
                for offset, chunk in chunks:
                    view = memoryview(chunk)
                    while view:
                        n = os.pwrite(fd, view, offset)
                        view, offset = view[n:], offset + n
            finally:
                os.close(fd)

    def partial_set_ranges(self, path: str, token: str, ranges: RangeSet) -> None:
        with self._locked():
            record = self._check(path, token)
            self._write_record(path, PartialRecord(record.size, ranges, token))

    def partial_read(self, path: str, offset: int, length: int) -> bytes:
        try:
            with open(self._pdata(path), "rb") as handle:
                return os.pread(handle.fileno(), length, offset)
        except FileNotFoundError:
            raise NotFound(f"{path} has no partial object in mock store {self.name!r}", errno=2) from None

    def partial_publish(self, path: str, token: str) -> None:
        with self._locked():
            self._check(path, token)
            os.replace(self._pdata(path), self._obj(path))
            os.unlink(self._prec(path))

    def partial_discard(self, path: str) -> None:
        with self._locked():
            for name in (self._prec(path), self._pdata(path)):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name)
