"""Third-party drivers that break the restart-marker contract in ways only one clause sees.

Each is installed by the self-tests as an outside distribution would be (an
entry point in a dist-info beside this module), so that the kit meets them
exactly as it meets a driver it has never seen, child processes included.

* ``subdirstore``: keeps each partial object's bytes in a ``.store``
  subdirectory and its resume record beside the object.  With
  ``sync_data=false`` (the lie) ``durable()`` syncs the record and the
  directories but never the data file; only the ``syncs`` clause (and a power
  cut) sees it.  With ``sync_data=true`` it is honest: the control.
* ``earlymark``: the posix driver, except that a write's range counts as
  written before its ``pwrite`` runs, so a ``durable()`` that runs meanwhile
  reports bytes still in flight; only the ``concurrency`` clause sees it.
* ``leaky``: the posix driver, except that a new writer and ``discard_partial``
  remove only the partial file a resume record names, so the partial file of
  a writer killed before its first ``durable()`` stays forever; only the
  ``leftovers`` clause sees it.
* ``rangeliar``: the posix driver, except that the union of an object's range
  writers claims the whole range of every writer that made anything durable,
  bytes another writer never made durable included; only the
  ``range-writers-claims`` clause sees it.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any, ClassVar

import attrs
from transfercore_posix import names, sidecar
from transfercore_posix.driver import PosixDriver
from transfercore_posix.fsutil import remove_quietly
from transfercore_posix.writer import PosixWriter

from transfercore.capabilities import Capabilities
from transfercore.contract import Writer
from transfercore.driverkit import (
    Intervals,
    check_open_write,
    check_resume,
    check_write,
    fsync_dir,
    new_token,
    overlap_error,
)
from transfercore.errors import RestartRejected, WriterClosed
from transfercore.options import bool_option
from transfercore.ranges import RangeSet

STORE = ".store"


# -- subdirstore -------------------------------------------------------------------------------


def _record_path(directory: str, name: str) -> str:
    return os.path.join(directory, f".{name}.rec")


class SubdirWriter(Writer):
    def __init__(self, fd: int, data_path: str, directory: str, name: str, size: int, token: str,
                 resumed: RangeSet, sync_data: bool) -> None:
        self._fd, self._data_path, self._directory, self._name = fd, data_path, directory, name
        self._size, self._token, self._resumed, self._sync_data = size, token, resumed, sync_data
        self._lock = threading.Lock()
        self._done = Intervals(resumed)
        self._open = True

    @property
    def size(self) -> int:
        return self._size

    @property
    def resumed(self) -> RangeSet:
        return self._resumed

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        end = check_write(offset, len(data), self._size, self._name)
        with self._lock:
            if not self._open:
                raise WriterClosed(f"writer for {self._name} is closed")
            if self._done.overlaps(offset, end):
                raise overlap_error(self._name, offset, end)
        os.pwrite(self._fd, data, offset)
        with self._lock:
            self._done.add(offset, end)

    def durable(self) -> RangeSet:
        with self._lock:
            if not self._open:
                raise WriterClosed(f"writer for {self._name} is closed")
            snapshot = self._done.to_rangeset()
        if self._sync_data:
            os.fdatasync(self._fd)
        # the record is stored with every care: written, fsynced, renamed, directory fsynced
        record = _record_path(self._directory, self._name)
        temp = record + ".tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            os.write(fd, json.dumps({"size": self._size, "token": self._token, "ranges": str(snapshot)}).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, record)
        fsync_dir(os.path.join(self._directory, STORE))
        fsync_dir(self._directory)
        return snapshot

    def complete(self) -> None:
        with self._lock:
            self._open = False
        os.ftruncate(self._fd, self._size)
        os.fsync(self._fd)
        os.close(self._fd)
        os.rename(self._data_path, os.path.join(self._directory, self._name))
        remove_quietly(_record_path(self._directory, self._name))
        fsync_dir(os.path.join(self._directory, STORE))
        fsync_dir(self._directory)

    def abort(self) -> None:
        with self._lock:
            if not self._open:
                return
            self._open = False
        os.close(self._fd)


class SubdirStoreDriver(PosixDriver):
    name: ClassVar[str] = "subdirstore"
    options: ClassVar[dict[str, Any]] = {
        **PosixDriver.options,
        "sync_data": bool_option("fdatasync the data file in durable() (false is the lie)", default=True),
    }

    def capabilities(self) -> Capabilities:
        return attrs.evolve(super().capabilities(), read_back=False)

    def open_write(self, path: str, size: int, resume: RangeSet | None = None) -> Writer:
        resume = check_open_write(size, resume, path)
        local = self.local_path(path)
        directory, name = os.path.split(local)
        store = os.path.join(directory, STORE)
        if not os.path.isdir(store):
            os.mkdir(store)
            fsync_dir(directory)
        sync_data = self.settings["sync_data"]
        if resume:
            record = self._record(directory, name)
            if record is None:
                raise RestartRejected(f"cannot resume {path}: there is no resume record")
            check_resume(path, resume, size, record["size"], RangeSet.parse(record["ranges"]))
            data_path = os.path.join(store, f"{name}.{record['token']}.part")
            fd = os.open(data_path, os.O_RDWR)
            return SubdirWriter(fd, data_path, directory, name, size, record["token"], resume, sync_data)
        self.discard_partial(path)
        token = new_token()
        data_path = os.path.join(store, f"{name}.{token}.part")
        fd = os.open(data_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        return SubdirWriter(fd, data_path, directory, name, size, token, RangeSet(), sync_data)

    @staticmethod
    def _record(directory: str, name: str) -> dict[str, Any] | None:
        try:
            with open(_record_path(directory, name), encoding="utf-8") as f:
                return dict(json.load(f))
        except FileNotFoundError:
            return None

    def partial(self, path: str) -> RangeSet:
        directory, name = os.path.split(self.local_path(path))
        record = self._record(directory, name)
        return RangeSet.parse(record["ranges"]) if record and record["ranges"] else RangeSet()

    def discard_partial(self, path: str) -> None:
        directory, name = os.path.split(self.local_path(path))
        remove_quietly(_record_path(directory, name))
        store = os.path.join(directory, STORE)
        if os.path.isdir(store):
            for entry in os.listdir(store):
                if entry.startswith(f"{name}.") and entry.endswith(".part"):
                    remove_quietly(os.path.join(store, entry))


# -- earlymark ---------------------------------------------------------------------------------


class EarlyMarkWriter(PosixWriter):
    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        end = check_write(offset, view.nbytes, self.size, repr(self))
        with self._lock:
            self._check_open()
            if self._done.overlaps(offset, end):
                raise overlap_error(repr(self), offset, end)
            # The lie: the range counts as written before its bytes are handed to the kernel.
            self._done.add(offset, end)
            self._inflight.add((offset, end))
        try:
            self._pwrite(view, offset)
        finally:
            self._finish((offset, end), ok=True)


class EarlyMarkDriver(PosixDriver):
    name: ClassVar[str] = "earlymark"

    def open_write(self, path: str, size: int, resume: RangeSet | None = None) -> Writer:
        writer = super().open_write(path, size, resume)
        writer.__class__ = EarlyMarkWriter
        return writer


# -- leaky -------------------------------------------------------------------------------------


class LeakyDriver(PosixDriver):
    name: ClassVar[str] = "leaky"

    def _discard(self, directory: str, name: str, *, sync: bool) -> None:
        # The lie: only the partial file the resume record names is removed; one
        # whose writer died before its first durable() has no record and stays.
        record = sidecar.load(directory, name)
        if record is not None:
            remove_quietly(os.path.join(directory, names.partial_name(name, record.token)))
        sidecar.remove(directory, name)
        if sync:
            fsync_dir(directory)


# -- rangeliar ---------------------------------------------------------------------------------


class RangeLiarDriver(PosixDriver):
    name: ClassVar[str] = "rangeliar"

    def durable_ranges(self, path: str, size: int) -> RangeSet:
        from transfercore_posix import multiwriter

        _local, directory, name = self._split(path)
        state = multiwriter.inspect(directory, name)
        claimed = state.durable
        for record in state.records.values():
            claimed = claimed | RangeSet((record.span,))  # the lie: a writer's whole range
        return claimed
