"""The mock driver: ``mock://store/path?options``.

A store with the semantics of real storage (see :mod:`.store`), in memory or
in a directory (``dir=``), with crash simulation, fault injection and
lying modes that the conformance kit must catch.
"""

from __future__ import annotations

import errno
import posixpath
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from transfercore.capabilities import Capabilities, RestartModel
from transfercore.checksums import canonical
from transfercore.contract import Driver, ObjectInfo, Reader, Writer
from transfercore.driverkit import check_open_write, check_resume, checksum_range
from transfercore.errors import (
    AlreadyExists,
    IsADirectory,
    LocationError,
    NotADirectory,
    NotFound,
    PermissionDenied,
    RestartRejected,
    StorageError,
)
from transfercore.options import (
    OptionSpec,
    bool_option,
    choice_option,
    float_option,
    int_option,
    size_option,
    str_option,
)
from transfercore.ranges import RangeSet

from .faults import LIES, FaultPlan, FaultState
from .reader import MockReader
from .store import MockStore
from .stores import get_store
from .writer import MockWriter

#: Checksums the mock computes itself (it holds the bytes, like a store that hashes on ingest).
CHECKSUMS = frozenset({"md5", "sha256", "crc32c", "adler32"})
_MODELS = {"ranges": RestartModel.RANGES, "prefix": RestartModel.PREFIX, "none": RestartModel.NONE}


class MockDriver(Driver):
    name: ClassVar[str] = "mock"
    options: ClassVar[Mapping[str, OptionSpec]] = {
        "model": choice_option("restart model: ranges, prefix (HPSS-like, ordered) or none", tuple(_MODELS), "ranges"),
        "dir": str_option("keep the store's durable state in this directory (shared between processes)"),
        "spill": bool_option("keep the store in a temporary directory instead of memory (large objects)"),
        "fail_after": size_option("fail the write that crosses this many bytes (once per opened URL)"),
        "fail_durable": int_option("fail the Nth durability call (once per opened URL)", minimum=1),
        "slow": float_option("seconds to sleep in every write and read", default=0.0),
        "lie": choice_option("break the contract on purpose: " + ", ".join(LIES), LIES),
        "corrupt": bool_option("a crash scrambles non-durable bytes instead of dropping them"),
        "flip_at": size_option("the store keeps the byte at this offset of each written object with its bits flipped"),
        "read_back": bool_option(
            "declare read_back (writers read durable bytes back before publishing); false acts as a "
            "driver that cannot", default=True),
        "max_writers": int_option("threads that may write one object at once", default=16, minimum=1),
        "block": size_option("preferred block size", default=1024 * 1024, minimum=1),
    }

    def __init__(self, authority: str = "", options: Mapping[str, Any] | None = None) -> None:
        super().__init__(authority, options)
        self._model = _MODELS[self.settings["model"]]
        self._faults = FaultState(FaultPlan.from_settings(self.settings))
        self._store: MockStore | None = None
        prefix = self._model is RestartModel.PREFIX
        self._caps = Capabilities(
            restart=self._model,
            ordered_writes=prefix,
            max_writers=1 if prefix else self.settings["max_writers"],
            preferred_block_size=self.settings["block"],
            min_block_size=1,
            checksums=CHECKSUMS,
            atomic_publish=True,
            crash_simulation=True,
            # Model none makes nothing durable before complete(): there is nothing to read back.
            read_back=bool(self.settings["read_back"]) and self._model is not RestartModel.NONE,
        )

    @property
    def store(self) -> MockStore:
        if self._store is None:
            self._store = get_store(self.authority, self.settings["dir"], spill=self.settings["spill"])
        return self._store

    # -- description -----------------------------------------------------------

    def capabilities(self) -> Capabilities:
        return self._caps

    def describe(self) -> dict[str, Any]:
        backing = f"directory {self.settings['dir']}" if self.settings["dir"] else (
            "temporary directory" if self.settings["spill"] else "memory")
        out: dict[str, Any] = {"store": self.authority or "(default)", "backing": backing}
        if self.settings["lie"]:
            out["lie"] = f"{self.settings['lie']} (breaks the restart-marker contract on purpose)"
        return out

    # -- helpers ---------------------------------------------------------------

    def _norm(self, path: str) -> str:
        if not isinstance(path, str) or not path.startswith("/"):
            raise LocationError(f"mock path {path!r} must be absolute, e.g. mock://store/dir/file")
        if "\x00" in path:
            raise LocationError(f"mock path {path!r} contains a NUL byte")
        if ".." in path.split("/"):
            raise LocationError(f"mock path {path!r} contains '..'; give the path without it")
        norm = posixpath.normpath(path)
        return "/" if norm == "//" else norm

    def _where(self, path: str) -> str:
        return f"mock://{self.authority}{path}"

    def _is_dir(self, path: str) -> bool:
        if path == "/":
            return True
        prefix = path + "/"
        store = self.store
        return path in store.dir_paths() or any(p.startswith(prefix) for p in store.object_paths())

    # -- objects ---------------------------------------------------------------

    def stat(self, path: str) -> ObjectInfo:
        path = self._norm(path)
        meta = self.store.object_meta(path)
        if meta is not None:
            return ObjectInfo(path=path, size=meta.size, mtime_ns=meta.mtime_ns, identity=meta.identity)
        if self._is_dir(path):
            return ObjectInfo(path=path, size=0, mtime_ns=0, is_dir=True, identity=f"dir:{path}", mode=0o755)
        raise NotFound(f"{self._where(path)} does not exist", errno=errno.ENOENT)

    def open_write(self, path: str, size: int, resume: RangeSet | None = None) -> Writer:
        path = self._norm(path)
        resume = check_open_write(size, resume, self._where(path))
        if self._is_dir(path):
            raise IsADirectory(f"{self._where(path)} is a directory", errno=errno.EISDIR)
        store = self.store
        if not resume:
            return self._writer(path, store.partial_begin(path, size), RangeSet())
        where = self._where(path)
        if self._model is RestartModel.NONE:
            raise RestartRejected(f"cannot resume {where}: this store (model=none) keeps no restart state")
        if self._model is RestartModel.PREFIX and resume != resume.prefix():
            raise RestartRejected(f"cannot resume {where}: marker {resume} is not a prefix 0-n (model=prefix)")
        if resume.end() > size:
            raise RestartRejected(f"cannot resume {where}: marker {resume} goes past the size {size}")
        with store.lock:
            record = store.partial_record(path)
            if record is None and self.settings["lie"] == "forget-record":
                # The lie: with its record gone, trust the caller's marker blindly.
                record = store.partial_begin(path, size)
            elif record is None:
                raise RestartRejected(f"cannot resume {where}: there is no durable resume record")
            else:
                check_resume(where, resume, size, record.size, record.ranges)
            if record.ranges != resume:
                # Bytes outside the caller's marker will be written again: stop vouching for them.
                store.partial_set_ranges(path, record.token, resume)
                record = store.partial_record(path) or record
        return self._writer(path, record, resume)

    def _writer(self, path: str, record: Any, resumed: RangeSet) -> MockWriter:
        return MockWriter(
            store=self.store,
            path=path,
            record=record,
            resumed=resumed,
            model=self._model,
            faults=self._faults,
            block=self.settings["block"],
        )

    def open_read(self, path: str) -> Reader:
        path = self._norm(path)
        if self.store.object_meta(path) is None and self._is_dir(path):
            raise IsADirectory(f"{self._where(path)} is a directory", errno=errno.EISDIR)
        return MockReader(self.store.object_open(path), self._where(path), self._faults)

    def partial(self, path: str) -> RangeSet:
        if self._model is RestartModel.NONE:
            return RangeSet()
        record = self.store.partial_record(self._norm(path))
        return record.ranges if record else RangeSet()

    def partial_bytes(self, path: str, offset: int, length: int) -> bytes:
        """The durable bytes of an unfinished object, as a crash would leave them (for tests)."""
        return self.store.partial_read(self._norm(path), offset, length)

    def discard_partial(self, path: str) -> None:
        self.store.partial_discard(self._norm(path))

    def checksum(self, path: str, algorithm: str) -> str | None:
        name = canonical(algorithm)
        if name not in CHECKSUMS:
            return None
        with self.open_read(path) as reader:
            return checksum_range(reader, name, block_size=1 << 20)

    def simulate_crash(self) -> None:
        self.store.crash()

    # -- namespace ---------------------------------------------------------------

    def _children(self, path: str) -> dict[str, bool]:
        prefix = "/" if path == "/" else path + "/"
        out: dict[str, bool] = {}
        for p in self.store.object_paths():
            if p.startswith(prefix):
                rest = p[len(prefix):]
                head, sep, _ = rest.partition("/")
                out[head] = out.get(head, False) or bool(sep)
        for d in self.store.dir_paths():
            if d.startswith(prefix) and d != path:
                out[d[len(prefix):].partition("/")[0]] = True
        return out

    def list(self, path: str) -> Iterator[ObjectInfo]:
        path = self._norm(path)
        if self.store.object_meta(path) is not None:
            raise NotADirectory(f"{self._where(path)} is an object, not a directory", errno=errno.ENOTDIR)
        if not self._is_dir(path):
            raise NotFound(f"{self._where(path)} does not exist", errno=errno.ENOENT)
        base = "" if path == "/" else path
        return iter([self.stat(f"{base}/{name}") for name in sorted(self._children(path))])

    def mkdir(self, path: str) -> None:
        path = self._norm(path)
        if path == "/" or self.store.object_meta(path) is not None or self._is_dir(path):
            raise AlreadyExists(f"{self._where(path)} already exists", errno=errno.EEXIST)
        self.store.dir_add(path)

    def rmdir(self, path: str) -> None:
        path = self._norm(path)
        if path == "/":
            raise PermissionDenied(f"the root of {self._where('/')} cannot be removed", errno=errno.EPERM)
        if not self._is_dir(path):
            raise NotFound(f"{self._where(path)} is not a directory", errno=errno.ENOENT)
        if self._children(path):
            raise StorageError(f"{self._where(path)} is not empty", errno=errno.ENOTEMPTY,
                               hint="remove what it holds first")
        self.store.dir_remove(path)

    def remove(self, path: str) -> None:
        path = self._norm(path)
        if self.store.object_delete(path):
            return
        if self._is_dir(path):
            raise IsADirectory(f"{self._where(path)} is a directory; use rmdir", errno=errno.EISDIR)
        raise NotFound(f"{self._where(path)} does not exist", errno=errno.ENOENT)

    def rename(self, src: str, dst: str) -> None:
        src, dst = self._norm(src), self._norm(dst)
        store = self.store
        if store.object_meta(src) is not None:
            if self._is_dir(dst):
                raise IsADirectory(f"{self._where(dst)} is a directory", errno=errno.EISDIR)
            store.object_rename(src, dst)
            return
        if not self._is_dir(src) or src == "/":
            raise NotFound(f"{self._where(src)} does not exist", errno=errno.ENOENT)
        if store.object_meta(dst) is not None or self._is_dir(dst):
            raise AlreadyExists(f"{self._where(dst)} already exists", errno=errno.EEXIST)
        with store.lock:
            for p in store.object_paths():
                if p.startswith(src + "/"):
                    store.object_rename(p, dst + p[len(src):])
            for d in store.dir_paths():
                if d == src or d.startswith(src + "/"):
                    store.dir_remove(d)
                    store.dir_add(dst + d[len(src):])
