"""The mock's storage: complete objects, durable partial objects, directories.

A store holds only what is *durable*.  Bytes a writer accepted but did not
make durable stay in the writer (volatile, like a page cache) until
``durable()`` or ``complete()`` applies them here, so a simulated crash only
has to tell the live writers to forget.

Stores are process-global by name, so two driver instances with the same
authority see the same objects.  :class:`MemoryStore` keeps everything in
memory; :class:`~.dirstore.DirStore` keeps it in a directory, which lets
several processes share one store and lets large objects leave memory.
"""

from __future__ import annotations

import abc
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Protocol

from transfercore.driverkit import new_token
from transfercore.errors import NotFound, StorageError
from transfercore.ranges import RangeSet

from .records import ObjectMeta, PartialRecord

Chunk = tuple[int, bytes]


class ObjectHandle(Protocol):
    size: int

    def read(self, offset: int, length: int) -> bytes: ...

    def close(self) -> None: ...


class BytesHandle:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self.size = len(data)

    def read(self, offset: int, length: int) -> bytes:
        return self._data[offset : offset + length]

    def close(self) -> None:
        self._data = b""


class CrashListener(Protocol):
    def power_loss(self) -> None: ...


class MockStore(abc.ABC):
    """What the driver needs from a store.  Every method is atomic."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.RLock()
        self._writers: weakref.WeakSet[CrashListener] = weakref.WeakSet()

    # -- crash -------------------------------------------------------------------

    def attach(self, writer: CrashListener) -> None:
        with self.lock:
            self._writers.add(writer)

    def crash(self) -> None:
        """A power loss: every live writer loses what it had not made durable."""
        with self.lock:
            writers = list(self._writers)
            self._writers = weakref.WeakSet()
        for writer in writers:
            writer.power_loss()

    # -- objects -----------------------------------------------------------------

    @abc.abstractmethod
    def object_meta(self, path: str) -> ObjectMeta | None: ...

    @abc.abstractmethod
    def object_open(self, path: str) -> ObjectHandle:
        """A stable view of the object as it is now (a later replacement does not change it)."""

    @abc.abstractmethod
    def object_delete(self, path: str) -> bool: ...

    @abc.abstractmethod
    def object_rename(self, src: str, dst: str) -> None: ...

    @abc.abstractmethod
    def object_paths(self) -> list[str]: ...

    # -- directories (explicit ones; parents of objects exist implicitly) ----------

    @abc.abstractmethod
    def dir_paths(self) -> set[str]: ...

    @abc.abstractmethod
    def dir_add(self, path: str) -> None: ...

    @abc.abstractmethod
    def dir_remove(self, path: str) -> None: ...

    # -- partial objects -------------------------------------------------------------

    @abc.abstractmethod
    def partial_record(self, path: str) -> PartialRecord | None: ...

    @abc.abstractmethod
    def partial_begin(self, path: str, size: int) -> PartialRecord:
        """Discard any partial object of ``path`` and start an empty one."""

    @abc.abstractmethod
    def partial_apply(self, path: str, token: str, chunks: Iterable[Chunk]) -> None:
        """Write ``chunks`` into the durable data (does not change the record)."""

    @abc.abstractmethod
    def partial_set_ranges(self, path: str, token: str, ranges: RangeSet) -> None: ...

    @abc.abstractmethod
    def partial_read(self, path: str, offset: int, length: int) -> bytes:
        """The durable bytes of a partial object (zeros where nothing landed)."""

    @abc.abstractmethod
    def partial_publish(self, path: str, token: str) -> None:
        """Make the partial object the complete object ``path``, atomically."""

    @abc.abstractmethod
    def partial_discard(self, path: str) -> None: ...


def _replaced(path: str) -> StorageError:
    return StorageError(
        f"the partial object {path} was discarded or restarted by another writer",
        hint="open the object again; a resume will tell what is still durable",
    )


class _Partial:
    __slots__ = ("record", "data")

    def __init__(self, record: PartialRecord) -> None:
        self.record = record
        self.data = bytearray(record.size)


class MemoryStore(MockStore):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._objects: dict[str, tuple[bytes, ObjectMeta]] = {}
        self._partials: dict[str, _Partial] = {}
        self._dirs: set[str] = set()

    def object_meta(self, path: str) -> ObjectMeta | None:
        with self.lock:
            entry = self._objects.get(path)
            return entry[1] if entry else None

    def object_open(self, path: str) -> ObjectHandle:
        with self.lock:
            entry = self._objects.get(path)
        if entry is None:
            raise NotFound(f"{path} does not exist in mock store {self.name!r}", errno=2)
        return BytesHandle(entry[0])

    def object_delete(self, path: str) -> bool:
        with self.lock:
            return self._objects.pop(path, None) is not None

    def object_rename(self, src: str, dst: str) -> None:
        with self.lock:
            if src not in self._objects:
                raise NotFound(f"{src} does not exist in mock store {self.name!r}", errno=2)
            self._objects[dst] = self._objects.pop(src)

    def object_paths(self) -> list[str]:
        with self.lock:
            return list(self._objects)

    def dir_paths(self) -> set[str]:
        with self.lock:
            return set(self._dirs)

    def dir_add(self, path: str) -> None:
        with self.lock:
            self._dirs.add(path)

    def dir_remove(self, path: str) -> None:
        with self.lock:
            self._dirs.discard(path)

    def partial_record(self, path: str) -> PartialRecord | None:
        with self.lock:
            part = self._partials.get(path)
            return part.record if part else None

    def partial_begin(self, path: str, size: int) -> PartialRecord:
        record = PartialRecord(size=size, ranges=RangeSet(), token=new_token())
        with self.lock:
            self._partials[path] = _Partial(record)
        return record

    def _part(self, path: str, token: str) -> _Partial:
        part = self._partials.get(path)
        if part is None or part.record.token != token:
            raise _replaced(path)
        return part

    def partial_apply(self, path: str, token: str, chunks: Iterable[Chunk]) -> None:
        with self.lock:
            data = self._part(path, token).data
            for offset, chunk in chunks:
                data[offset : offset + len(chunk)] = chunk

    def partial_set_ranges(self, path: str, token: str, ranges: RangeSet) -> None:
        with self.lock:
            part = self._part(path, token)
            part.record = PartialRecord(part.record.size, ranges, token)

    def partial_read(self, path: str, offset: int, length: int) -> bytes:
        with self.lock:
            part = self._partials.get(path)
            if part is None:
                raise NotFound(f"{path} has no partial object in mock store {self.name!r}", errno=2)
            return bytes(part.data[offset : offset + length])

    def partial_publish(self, path: str, token: str) -> None:
        with self.lock:
            part = self._part(path, token)
            del self._partials[path]
            meta = ObjectMeta(size=part.record.size, mtime_ns=time.time_ns(), identity=token)
            self._objects[path] = (bytes(part.data), meta)

    def partial_discard(self, path: str) -> None:
        with self.lock:
            self._partials.pop(path, None)
