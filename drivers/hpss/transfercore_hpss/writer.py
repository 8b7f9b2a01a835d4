"""Writing one HPSS file through PIO, with restart markers from Execute.

The engine's ordered blocks go into a bounded staging queue; the participant
callback fills exactly the length HPSS asks for from it.  A coordinator
thread executes the file in segments (with ``inflight`` above 1, that many
PIO groups take segments in turn, see :class:`_Lane`); each
``hpss_PIOExecute`` return, on success and on error, acknowledges
``[offset, offset + bytes moved)``, and the restart point is the acknowledged
prefix with no gap.  Nothing the callbacks handed over counts as durable.  Each restart point is
written to the file's resume record (:mod:`.record`) before :meth:`durable`
may report it.  A fresh write creates its partial file and writes the whole
record with its first restart point, not at the open: a small file that is
published before any is reported never has a record (two metadata
transactions fewer per file).

The bytes go to the hidden partial name of :mod:`.names`, never to the final
name.  :meth:`HpssWriter.complete` publishes: once every byte is
acknowledged and the file is closed, ``hpss_Rename`` moves the partial file
(with its attributes) to the final name, replacing an older object there in
one namespace operation as ``rename(2)`` does; only then is the resume record
dropped and the write reported complete.  A crash before the rename leaves a
partial file whose record covers every byte: the next ``open_write`` of the
final name resumes it at its end and only publishes.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs

from transfercore.contract import Writer, check_write
from transfercore.errors import (
    RESUME_HINT,
    AlreadyExists,
    InvalidRead,
    InvalidWrite,
    StorageError,
    TransferCoreError,
    WriterClosed,
)
from transfercore.ranges import ByteRange, RangeSet

from . import api, checksum, names, record, threads
from ._hpss import ffi, lib
from .pio import PioSession, block_buffer

log = logging.getLogger(__name__)
#: Size of the buffers staged copies are made in (a larger block gets one of its own size).
_SPARE_SIZE = 256 * 1024
#: Spare buffers a writer keeps (2 MiB).
_SPARES = 8
#: Seconds durable() waits for a PIO call that moves no data.
STALL_PATIENCE = 5.0
_bz4719_warned = False
_warn_lock = threading.Lock()


def warn_bz4719(version: api.Version) -> None:
    """Warn once per process that this HPSS leaves BytesMoved unset on error."""
    global _bz4719_warned
    with _warn_lock:
        if _bz4719_warned:
            return
        _bz4719_warned = True
    log.warning(
        "HPSS %s left BytesMoved unset after a failed hpss_PIOExecute: this installation has BZ4719 "
        "(fixed in HPSS 7.5); no restart point beyond the last completed segment is reported",
        version.text,
    )


class HpssWriter(Writer):
    def __init__(
        self,
        path: str,
        final: str,
        size: int,
        start: int,
        fd: int,
        stripe_width: int,
        block: int,
        segment: int,
        watchdog: float,
        inflight: int = 1,
        unsaved: record.ResumeRecord | None = None,
    ) -> None:
        self._path = path  # the partial file, where every byte goes
        # The record of a fresh write, saved whole with its first durable end; None once saved
        # (or when open_writer saved it, for a resume or a partial file that existed).
        self._unsaved = unsaved
        self._final = final
        self.published = False
        self._size = size
        self._start = start
        self._fd: int | None = fd
        self._segment = segment
        self._cond = threading.Condition()
        # Staged blocks, each with its release when it was given away (write_owned), else None.
        self._staged: collections.deque[tuple[memoryview, Callable[[], None] | None]] = collections.deque()
        self._staged_bytes = 0
        self._limit = max(2 * block, 8 << 20)
        # Buffers of staged copies that HPSS has taken, kept for the next ones (no allocation
        # and zeroing per block in the steady state; a few, since each is memory held).
        self._spare: list[bytearray] = []
        self._next_write = start  # next offset write() accepts
        self._next_pio = start  # next offset the callback must serve
        self._durable_end = start  # from Execute returns only, and in the resume record
        # Acknowledged by Execute returns; the last one (the file's end) reaches
        # the record only when durable() asks for it (see _advance).
        self._acked_end = start
        self._record_lock = threading.Lock()
        self._reported_end = start  # the latest marker durable() returned
        self._stopping = False
        self._closed = False
        self._block = block
        # Execute returns not yet joined to the acknowledged prefix (several segments in flight)
        self._acks: dict[int, int] = {}
        self.segments_executed = 0
        self.markers: list[int] = []
        #: Metadata calls that raised the resume record, and the seconds they took.
        self.record_updates = 0
        self.record_seconds = 0.0
        self._lanes: list[_Lane] = []
        # The read-back's own descriptor, opened read-only on first use: PIO
        # keeps writing through the other one meanwhile.
        self._read_lock = threading.Lock()
        self._read_fd: int | None = None
        # The read-back (the caller's verification) hashed as it goes, in
        # order: a whole-file MD5 of the bytes as HPSS stores them, kept in
        # hpsssum's attributes on publication at no extra read.
        self._md5: Any = hashlib.md5(usedforsecurity=False)
        self._md5_end = 0
        if start < size:
            lanes = min(inflight, -(-(size - start) // segment))
            try:
                for index in range(lanes):
                    self._lanes.append(_Lane(self, index, lanes, fd, block, stripe_width, watchdog, path))
            except BaseException:
                for lane in self._lanes:
                    lane.pio.close()
                raise
            for lane in self._lanes:
                lane.start()

    # -- the contract ------------------------------------------------------------

    @property
    def size(self) -> int:
        return self._size

    @property
    def resumed(self) -> RangeSet:
        return RangeSet([ByteRange(0, self._start)]) if self._start else RangeSet()

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        # The caller may reuse its buffer once write() returns: keep a copy, made with the
        # interpreter lock released (a 4 MiB-a-second copy under it stalled every data
        # connection).  Bytes cannot change: a block the caller holds as bytes (the reorder
        # window's) is kept as it is.
        self._stage(offset, view if isinstance(view.obj, bytes) or not len(view) else self._copy(view), None)

    def write_owned(self, offset: int, data: memoryview, release: Callable[[], None]) -> None:
        # Given away: staged as it is, released once the participant copied its last byte.
        self._stage(offset, memoryview(data).cast("B"), release)

    def _stage(self, offset: int, staged: memoryview, release: Callable[[], None] | None) -> None:
        n = len(staged)
        try:
            with self._cond:
                if self._closed:
                    raise WriterClosed(f"writer for hpss://{self._final} is closed")
                self._raise_if_failed()
                check_write(offset, n, self._size, f"hpss://{self._final}")
                if offset != self._next_write:
                    raise InvalidWrite(
                        f"HPSS PIO needs ordered data: expected offset {self._next_write}, got {offset}",
                        hint="deliver blocks in ascending order with no holes",
                    )
                if n == 0:
                    if release is not None:
                        release()
                    return
                while self._staged_bytes >= self._limit and not self._stopping:
                    self._cond.wait(1.0)
                    self._raise_if_failed()
                self._raise_if_failed()
                if self._stopping:
                    raise WriterClosed(f"writer for hpss://{self._final} is stopping")
                self._staged.append((staged, release))
                self._staged_bytes += n
                self._next_write += n
                self._cond.notify_all()
        except BaseException:
            self._done_with(staged, release)
            raise

    def _copy(self, view: memoryview) -> memoryview:
        n = len(view)
        # only write() takes spares (the caller writes one block at a time)
        buf = self._spare.pop() if n <= _SPARE_SIZE and self._spare else bytearray(max(n, _SPARE_SIZE))
        lib.tc_copy(ffi.from_buffer(buf), ffi.from_buffer(view), n)
        return memoryview(buf)[:n]

    def _done_with(self, staged: memoryview, release: Callable[[], None] | None) -> None:
        """Nothing reads ``staged`` any more: a given block goes back, a copy's buffer serves the next copy."""
        if release is not None:
            release()
            return
        buf = staged.obj
        if type(buf) is bytearray and len(buf) == _SPARE_SIZE and len(self._spare) < _SPARES:
            self._spare.append(buf)

    def durable(self) -> RangeSet:
        # PIO can only make a whole segment durable: wait for every segment
        # whose bytes were all handed over, so that what was written is
        # durable as far as HPSS allows, then report the Execute returns.
        # A PIO that stops moving data is not waited for beyond STALL_PATIENCE:
        # the caller gets the marker it has and stays responsive (to a
        # cancel, say) while the watchdog decides whether the stall is an error.
        with self._cond:
            written = self._next_write
            target = written if written == self._size else written - written % self._segment
            while self._acked_end < target and not self._stopping:
                self._cond.wait(0.5)
                if any(lane.pio.activity.stalled_for() > STALL_PATIENCE for lane in self._lanes):
                    break
            acked = self._acked_end
        if acked > self._durable_end:
            self._record_to(acked)
        with self._cond:
            end = self._durable_end
            self._reported_end = end
        return RangeSet([ByteRange(0, end)]) if end else RangeSet()

    def _record_to(self, end: int) -> None:
        """The acknowledged end into the resume record, then reportable; a failure stops the write."""
        with self._record_lock:
            if end <= self._durable_end:
                return
            started = time.perf_counter()
            try:
                self._save_durable(end)
            except TransferCoreError as exc:
                if self._lanes:
                    self._lanes[0].pio.fail(exc)  # every lane stops at the next segment
                log.warning("recording the durable end of %s: %s", self._path, exc)
                return
            finally:
                self.record_seconds += time.perf_counter() - started
            self.record_updates += 1
            with self._cond:
                self._durable_end = end
                self._cond.notify_all()

    def _save_durable(self, end: int) -> None:
        """Raise the record's durable end (called under the record lock): one metadata call.
        The first writes the whole record, so that no resume ever meets half of one."""
        if self._unsaved is None:
            record.set_durable(self._path, end)
            return
        record.save(self._path, attrs.evolve(self._unsaved, durable=end), checksum.invalid_values())
        self._unsaved = None

    def read_durable(self, offset: int, buffer: bytearray | memoryview) -> None:
        """Fill ``buffer`` with the file's bytes at ``offset``, inside the prefix
        the Execute returns acknowledged.

        The bytes come from HPSS through a read-only descriptor of their own
        (``hpss_Open``, then ``hpss_SetFileOffset`` and ``hpss_Read``), as any
        client of the file would read them; the staging queue is never read.
        PIO goes on writing later segments meanwhile: an acknowledged segment
        is not written again.
        """
        view = memoryview(buffer).cast("B")
        end = offset + view.nbytes if type(offset) is int else -1
        if type(offset) is not int or offset < 0 or end > self._size:
            raise InvalidRead(f"read-back {offset!r}+{view.nbytes} of hpss://{self._final} is outside 0-{self._size}")
        with self._cond:
            if self._closed:
                raise WriterClosed(f"writer for hpss://{self._final} is closed")
            durable_end = self._reported_end
        if end > durable_end:
            raise InvalidWrite(
                f"read-back {offset}-{end} of hpss://{self._final} is not inside the durable marker 0-{durable_end}",
                hint="read back only bytes a durable() call returned",
            )
        if not view.nbytes:
            return
        with self._read_lock:
            if self._read_fd is None:
                self._read_fd, _ = api.open_file(self._path, os.O_RDONLY)
            got = api.pread_into(self._read_fd, view, offset, self._path)
            if got == view.nbytes and self._md5 is not None:
                if offset == self._md5_end:
                    self._md5.update(view)
                    self._md5_end += got
                elif offset > self._md5_end:
                    self._md5 = None  # a gap: no whole-file sum from this read-back
        if got < view.nbytes:
            raise StorageError(
                f"hpss://{self._path} ends at {offset + got}, inside the prefix HPSS acknowledged ({durable_end})",
                hint="something outside this transfer truncated the file; run the copy again with --no-resume",
            )

    def complete(self) -> None:
        with self._cond:
            if self._closed:
                raise WriterClosed(f"writer for hpss://{self._final} is closed")
            if self._next_write != self._size:
                raise InvalidWrite(
                    f"complete() after {self._next_write} of {self._size} bytes of {self._final}"
                )
        self._wait_coordinator()
        self._finish()
        self._raise_if_failed()
        if self._acked_end != self._size:
            raise TransferCoreError(
                f"HPSS acknowledged {self._acked_end} of {self._size} bytes of {self._final}",
                hint=RESUME_HINT,
            )
        self._publish()

    def _publish(self) -> None:
        self._store_read_back_md5()
        # The rename is the publication: until it returns, the partial file and
        # its record (durable == size) are a resumable write that needs no data.
        try:
            api.rename(self._path, self._final)
        except TransferCoreError as exc:
            # Every byte is acknowledged: the record says so before anyone is told to resume it.
            self._record_to(self._acked_end)
            exc.hint = exc.hint or (
                f"every byte is durable under {self._path}; run the same command again to publish it"
            )
            raise
        with self._cond:
            # Published: every byte is durable under the final name, no record needed.
            self._durable_end = self._acked_end
            self.published = True
        # Now there is nothing left to resume.  The record's keys are only ever
        # read from partial names: failing to drop them from the published
        # object loses nothing, so it is not a failed write.
        if self._unsaved is not None:  # never saved: nothing to drop
            return
        try:
            record.remove(self._final)
        except TransferCoreError as exc:
            log.warning("dropping the resume record of the published hpss://%s: %s", self._final, exc)

    def _store_read_back_md5(self) -> None:
        """hpsssum's MD5 of the object, Valid, when the read-back covered all of
        it; set on the partial file so that it is published with the name."""
        with self._read_lock:
            whole = self._md5 is not None and self._md5_end == self._size
            value = self._md5.hexdigest() if whole else None
        if value is None:
            return  # the stored checksum stays Invalid, as every write leaves it
        try:
            checksum.store(self._path, "md5", value, self._size)
        except TransferCoreError as exc:
            log.warning("storing the MD5 of hpss://%s: %s (it stays Invalid)", self._final, exc)

    def abort(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._stopping = True
            self._cond.notify_all()
        self._wait_coordinator()
        try:
            self._finish()
        except TransferCoreError as exc:
            log.warning("closing aborted HPSS write of %s: %s", self._path, exc)
        if self._durable_end == 0:
            # Nothing acknowledged, nothing to resume: leave no empty object behind.
            try:
                api.unlink(self._path)
            except TransferCoreError as exc:
                log.warning("removing the empty partial file %s: %s", self._path, exc)

    # -- internals ---------------------------------------------------------------

    def _error(self) -> BaseException | None:
        """The first failure of any PIO group of this write."""
        for lane in self._lanes:
            error = lane.pio.error
            if error is not None:
                return error
        return None

    def _raise_if_failed(self) -> None:
        error = self._error()
        if error is not None:
            raise error

    def _wait_coordinator(self) -> None:
        for lane in self._lanes:
            while not lane.done.wait(0.5):
                if lane.pio.error is not None and (lane.job is None or not lane.job.is_alive()):
                    break
            if lane.pio.error is not None and not lane.done.is_set():
                # A hung Execute: the watchdog already ended the group.
                lane.done.wait(5.0)

    def _finish(self) -> None:
        """PIOEnd on both groups, then hpss_Close, before reporting anything."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._stopping = True
            self._cond.notify_all()
        for lane in self._lanes:
            lane.pio.close()
            if lane.pio.participant_gone:
                # As the session's own buffer: back to the pool now, not freed when the collector
                # next finds the writer and its lanes (they point at each other; 4 MiB an upload).
                lane.cbuf = None
                lane.give_cbuf()
        with self._read_lock:
            if self._read_fd is not None:
                read_fd, self._read_fd = self._read_fd, None
                try:
                    api.close(read_fd, self._path)
                except TransferCoreError as exc:
                    log.warning("closing the read-back descriptor of %s: %s", self._path, exc)
        if self._fd is not None:
            fd, self._fd = self._fd, None
            api.close(fd, self._path)

    def _segments(self) -> Iterator[tuple[int, int]]:
        pos = self._start
        while pos < self._size:
            end = min(self._size, (pos // self._segment + 1) * self._segment)
            yield pos, end
            pos = end

    def _coordinate(self, lane: _Lane) -> None:
        """Execute the lane's segments (every ``lanes``-th, from its index), each possibly in several calls."""
        pio = lane.pio
        try:
            for seg_start, seg_end in itertools.islice(self._segments(), lane.index, None, lane.count):
                if self._error() is not None:
                    return
                pos = seg_start
                while pos < seg_end:
                    want = seg_end - pos
                    result = pio.execute(pos, want)
                    moved = result.moved
                    if moved is not None and moved > want:
                        # More than was asked cannot be true: trust none of it.
                        log.warning(
                            "hpss_PIOExecute reported %d bytes moved of %d asked; ignored", moved, want
                        )
                        moved = None
                    if result.rc != 0:
                        if moved is None:
                            warn_bz4719(api.version())
                        else:
                            pos = self._advance(pos, moved)
                        pio.fail(_execute_error(result.rc, self._path, self._acked_end))
                        return
                    if moved is None or moved == 0:
                        pio.fail(TransferCoreError(f"hpss_PIOExecute moved nothing at {pos} of {self._path}"))
                        return
                    pos = self._advance(pos, moved)
                with self._cond:
                    self.segments_executed += 1
        except BaseException as exc:
            pio.fail(exc)
        finally:
            pio.end()
            lane.done.set()
            with self._cond:
                # Past the last segment, or failed: a callback waiting for bytes gives up.  Another
                # lane still executing keeps the queue open, unless this one failed.
                if pio.error is not None or all(other.done.is_set() for other in self._lanes):
                    self._stopping = True
                self._cond.notify_all()

    def _advance(self, pos: int, moved: int) -> int:
        """Take the Execute return ``[pos, pos + moved)``; the acknowledged prefix grows once it joins it."""
        end = pos + moved
        with self._record_lock:
            with self._cond:
                self._acks[pos] = end
                prefix = self._acked_end
                while prefix in self._acks:
                    prefix = self._acks.pop(prefix)
                if prefix <= self._acked_end:
                    return end
            # The file's last Execute: complete() publishes without a record update (a crash
            # before the rename resumes from the previous one); durable() records it before
            # reporting it.  Any other: the record first, since a marker reported by durable()
            # may reach a journal at once, and a resume accepts only what the record holds.
            if prefix < self._size:
                started = time.perf_counter()
                try:
                    self._save_durable(prefix)
                finally:
                    self.record_seconds += time.perf_counter() - started
                self.record_updates += 1
                with self._cond:
                    self._durable_end = prefix
            with self._cond:
                self._acked_end = prefix
                self.markers.append(prefix)
                self._cond.notify_all()
        return end

    def _fill(self, lane: _Lane, offset: int, length_ptr: object, buffer_ptr: object) -> int:
        """A lane's participant asks for ``*length`` bytes at ``offset``: the staged bytes, once they are next."""
        need = int(length_ptr[0])  # type: ignore[index]
        if buffer_ptr[0] == ffi.NULL:  # type: ignore[index]
            buffer_ptr[0] = lane.cbuf  # type: ignore[index]
            if need > self._block:
                return 1
        activity = lane.pio.activity
        with self._cond:
            # Another lane's segment comes first: the queue's head is its bytes.
            while self._next_pio < offset and not self._stopping:
                activity.waiting_for_caller = True
                self._cond.wait(1.0)
            activity.waiting_for_caller = False
            if offset != self._next_pio:
                if not self._stopping:
                    lane.pio.fail(InvalidWrite(f"HPSS asked for offset {offset}, expected {self._next_pio}"))
                return 1
        dst = ffi.cast("char *", buffer_ptr[0])  # type: ignore[index]
        filled = 0
        while filled < need:
            # Every staged piece the block still needs, taken at once: one trip through the
            # lock for them all, not two for each.
            pieces: list[tuple[memoryview, int, Callable[[], None] | None, bool]] = []
            with self._cond:
                while not self._staged and not self._stopping:
                    activity.waiting_for_caller = True
                    self._cond.wait(1.0)
                activity.waiting_for_caller = False
                if not self._staged:
                    return 1  # stopping: a short block must never count as moved
                wanted = need - filled
                while self._staged and wanted:
                    head, release = self._staged[0]
                    take = min(wanted, len(head))
                    if take == len(head):
                        self._staged.popleft()
                    else:
                        self._staged[0] = (head[take:], release)
                    pieces.append((head, take, release, take == len(head)))
                    wanted -= take
            # Only the lane whose turn it is takes staged bytes: the copies need neither the
            # lock nor the interpreter's (cffi releases it), so write() goes on meanwhile.
            took = 0
            for head, take, _, _ in pieces:
                lib.tc_copy(dst + filled + took, ffi.from_buffer(head), take)
                took += take
            filled += took
            with self._cond:
                self._staged_bytes -= took
                self._cond.notify_all()
            for head, _, release, whole in pieces:
                if whole:
                    self._done_with(head, release)
        with self._cond:
            self._next_pio += need
            self._cond.notify_all()
        return 0


class _Lane:
    """One PIO group of a write: a participant and the coordinator thread that executes its segments.

    With ``inflight`` above 1 a write has that many, taking segments in turn,
    so one segment's Execute can wait for its bytes to become durable while the
    next segment's bytes move.
    """

    def __init__(
        self, writer: HpssWriter, index: int, count: int, fd: int, block: int, width: int, watchdog: float, path: str
    ) -> None:
        self.writer = writer
        self.index, self.count = index, count
        #: for a first callback that comes without a buffer
        self.cbuf: object | None
        self.cbuf, self.give_cbuf = block_buffer(block)
        self.done = threading.Event()
        self.pio = PioSession(api.PioOperation.WRITE, fd, block, width, self, watchdog, path)
        self.name = f"hpss-coordinator {path} {index}"
        self.job: threads.Job | None = None

    def start(self) -> None:
        self.job = threads.start(lambda: self.writer._coordinate(self), self.name)

    def on_block(self, offset: int, length_ptr: object, buffer_ptr: object) -> int:
        return self.writer._fill(self, offset, length_ptr, buffer_ptr)


def _execute_error(rc: int, path: str, pos: int) -> BaseException:
    try:
        api.check(rc, f"hpss_PIOExecute({path})")
    except TransferCoreError as exc:
        exc.hint = exc.hint or f"{pos} bytes are durable; {RESUME_HINT}"
        return exc
    return TransferCoreError(f"hpss_PIOExecute({path}) returned {rc}")


def open_writer(
    final: str,
    size: int,
    block: int,
    segment: int,
    watchdog: float,
    resume: record.ResumeRecord | None = None,
    start: int = 0,
    *,
    inflight: int = 1,
) -> HpssWriter:
    """Open the partial file of ``final``, start PIO.

    ``resume`` is the checked record of the write being resumed at ``start``:
    its record is lowered to ``start`` and the stored checksum marked invalid
    (one metadata call) before a byte is written.  A fresh write creates a new
    partial file, which holds no attributes, so its record waits for its first
    durable end (:meth:`HpssWriter._save_durable`); only a partial file left
    by an earlier write (truncated here) has its record replaced at once, so
    that none of that write's markers can be accepted against the new bytes.
    """
    path = names.partial_path(final)
    if resume is None:
        start = 0
        try:
            fd, width = api.open_file(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, size)
            created = True
        except AlreadyExists:
            fd, width = api.open_file(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, size)
            created = False
    else:
        fd, width = api.open_file(path, os.O_WRONLY | os.O_CREAT, size)
        created = False
    try:
        if resume is None:
            current = record.ResumeRecord.start(size, api.lstat(path).ino)
        else:
            # Bytes past start are written again and may be rolled back on an
            # error: the record must not claim them any more.
            current = attrs.evolve(resume, durable=start)
        if not created:
            record.save(path, current, checksum.invalid_values())
        return HpssWriter(
            path, final, size, start, fd, width, block, segment, watchdog, inflight, current if created else None
        )
    except BaseException:
        api.close(fd, path)
        raise
