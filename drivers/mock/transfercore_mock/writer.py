"""The mock writer: accepted bytes are volatile until :meth:`MockWriter.durable`.

Accepted chunks wait in the writer, like dirty pages; ``durable()`` applies
them to the store and then records the marker, and a simulated crash makes
every live writer drop (or, with ``corrupt=true``, scramble) what was still
waiting.  The lying modes bend exactly one of those steps; see the README.
"""

from __future__ import annotations

import os
import threading
import time

from transfercore.capabilities import RestartModel
from transfercore.contract import Writer
from transfercore.driverkit import check_write, never_written_error, overlap_error
from transfercore.errors import InvalidRead, InvalidWrite, StorageError, WriterClosed
from transfercore.ranges import ByteRange, RangeSet

from .faults import FaultState
from .records import PartialRecord
from .store import Chunk, MockStore

_OPEN, _COMPLETED, _ABORTED, _CRASHED = "open", "completed", "aborted", "crashed"


class MockWriter(Writer):
    def __init__(
        self,
        *,
        store: MockStore,
        path: str,
        record: PartialRecord,
        resumed: RangeSet,
        model: RestartModel,
        faults: FaultState,
        block: int,
    ) -> None:
        self._store = store
        self._path = path
        self._token = record.token
        self._size = record.size
        self._resumed = resumed
        self._model = model
        self._faults = faults
        self._lie = faults.plan.lie
        self._block = block
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._pending: list[Chunk] = []
        self._done = resumed
        self._marker = resumed
        self._recorded = record.ranges
        self._state = _OPEN
        store.attach(self)

    # -- the Writer contract ---------------------------------------------------

    @property
    def size(self) -> int:
        return self._size

    @property
    def resumed(self) -> RangeSet:
        return self._resumed

    @property
    def written(self) -> RangeSet:
        """Every byte accepted by this writer or resumed (for tests)."""
        with self._lock:
            return self._done

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        length = view.nbytes
        end = check_write(offset, length, self._size, self._where())
        self._check_state()
        if length == 0:
            return
        # The caller may reuse its buffer once write returns; the copy is what the store will hold.
        chunk = self._faults.damage(offset, view.tobytes())
        self._faults.before_write(length, f"write {offset}-{end} to {self._where()}")
        if self._lie == "racy-marker":
            self._racy_write(offset, end, chunk)
            return
        with self._lock:
            self._check_state()
            if self._model is RestartModel.PREFIX and offset != self._done.end():
                raise InvalidWrite(
                    f"write {offset}-{end} to {self._where()} is out of order; this store needs "
                    f"ascending contiguous writes and expected offset {self._done.end()}",
                    hint="deliver blocks in order (the driver declares ordered_writes)",
                )
            if self._done.intersection(RangeSet.span(offset, end)):
                raise overlap_error(self._where(), offset, end)
            self._done = self._done | ByteRange(offset, end)
            self._pending.append((offset, chunk))

    def _racy_write(self, offset: int, end: int, chunk: bytes) -> None:
        """The lie of racy-marker: the range counts as written before its bytes are
        handed over, as a driver that updates its marker before its pwrite returns."""
        with self._lock:
            self._check_state()
            if self._done.intersection(RangeSet.span(offset, end)):
                raise overlap_error(self._where(), offset, end)
            self._done = self._done | ByteRange(offset, end)
        time.sleep(0.005)  # the "pwrite"
        with self._lock:
            self._pending.append((offset, chunk))

    def durable(self) -> RangeSet:
        with self._sync_lock:
            self._check_state()
            self._faults.before_durable(self._where())
            with self._store.lock:
                with self._lock:
                    self._check_state()
                    chunks, self._pending = self._pending, []
                    snapshot = self._done
                if self._model is RestartModel.NONE:
                    self._store.partial_apply(self._path, self._token, chunks)
                    return RangeSet()
                if self._lie == "early-marker":
                    # The lie: report and record the ranges, leave the bytes volatile.
                    with self._lock:
                        self._pending = chunks + self._pending
                    marker = snapshot | self._marker
                else:
                    self._store.partial_apply(self._path, self._token, chunks)
                    marker = snapshot | self._marker
                    if self._lie == "wide-marker":
                        marker = marker | self._widening(marker)
                if marker != self._recorded:
                    self._store.partial_set_ranges(self._path, self._token, marker)
                    self._recorded = marker
                self._marker = marker
                return marker

    def read_durable(self, offset: int, buffer: bytearray | memoryview) -> None:
        """Fill ``buffer`` from the store's durable bytes of the partial object
        (what a crash would leave and a reader of the completed object gets),
        never from the chunks this writer still holds; only inside the latest
        marker, which no later write may touch."""
        view = memoryview(buffer).cast("B")
        end = offset + view.nbytes if type(offset) is int else -1
        if type(offset) is not int or offset < 0 or end > self._size:
            raise InvalidRead(f"read-back {offset!r}+{view.nbytes} of {self._where()} is outside 0-{self._size}")
        with self._lock:
            self._check_state()
            marker = self._marker
        if view.nbytes and not marker.contains(ByteRange(offset, end)):
            raise InvalidWrite(
                f"read-back {offset}-{end} of {self._where()} is not inside the durable marker {marker or '(empty)'}",
                hint="read back only bytes a durable() call returned",
            )
        if self._faults.plan.slow:
            time.sleep(self._faults.plan.slow)
        try:
            data = self._store.partial_read(self._path, offset, view.nbytes)
        except StorageError as exc:
            raise StorageError(
                f"cannot read back {self._where()}: {exc.args[0]}",
                hint="the partial object was discarded or replaced; run the same command again",
            ) from None
        if len(data) != view.nbytes:
            raise StorageError(f"the partial object of {self._where()} ends at {offset + len(data)}, inside its marker")
        view[:] = data

    def _widening(self, marker: RangeSet) -> RangeSet:
        """The lie of wide-marker: the first bytes not written, up to one block."""
        missing = marker.complement(self._size)
        if not missing:
            return RangeSet()
        first = missing.ranges[0]
        return RangeSet.span(first.start, min(first.end, first.start + self._block))

    def complete(self) -> None:
        with self._sync_lock:
            with self._store.lock:
                with self._lock:
                    self._check_state()
                    missing = self._done.complement(self._size)
                    if missing:
                        raise never_written_error(self._where(), missing)
                    chunks, self._pending = self._pending, []
                try:
                    self._store.partial_apply(self._path, self._token, chunks)
                    self._store.partial_publish(self._path, self._token)
                except BaseException:
                    with self._lock:
                        self._pending = chunks + self._pending
                    raise
                with self._lock:
                    self._state = _COMPLETED

    def abort(self) -> None:
        with self._lock:
            if self._state == _OPEN:
                self._state = _ABORTED
            self._pending = []

    # -- crash -----------------------------------------------------------------

    def power_loss(self) -> None:
        """Called by the store's crash: what was not durable is gone (or garbage)."""
        with self._lock:
            if self._state != _OPEN:
                return
            self._state = _CRASHED
            chunks, self._pending = self._pending, []
        try:
            if self._faults.plan.corrupt and chunks:
                self._store.partial_apply(
                    self._path, self._token, [(off, os.urandom(len(c))) for off, c in chunks]
                )
            if self._lie == "forget-record":
                self._store.partial_discard(self._path)
        except StorageError:
            pass  # the partial object was already replaced: nothing of ours to lose

    # -- helpers ---------------------------------------------------------------

    def _where(self) -> str:
        return f"mock://{self._store.name}{self._path}"

    def _check_state(self) -> None:
        if self._state == _CRASHED:
            raise StorageError(
                f"mock store {self._store.name!r} crashed while {self._where()} was being written",
                hint="open the object again with the last marker to resume",
            )
        if self._state != _OPEN:
            raise WriterClosed(f"writer for {self._where()} is {self._state}; open a new one")
