"""Parallel positional writes into a partial file, with durable markers.

Many threads call :meth:`PosixWriter.write` at once; each write claims its
range under a short lock, then ``pwrite``\\ s outside it.  By default the
``pwrite`` calls themselves take turns on a separate lock: Linux serializes
buffered writes to one file on the inode's lock anyway, and a thread waiting
for that kernel lock spins on the CPU (optimistic spinning; measured at 5-30 %
of a copy's CPU time, most when filling fresh page-cache pages is slow),
whereas one waiting here sleeps and leaves the CPU to the reads and hashing of
other streams.  The driver option ``parallel_pwrite=true`` lifts the turn for
file systems that do write one file in parallel.

A marker is produced only by :meth:`PosixWriter.durable`:

1. snapshot the ranges whose ``write`` already returned,
2. ``fdatasync`` the partial file (every snapshotted byte is now on media),
3. store the resume record with exactly those ranges (atomic, fsynced,
   directory fsynced, which also makes a new partial file's entry durable),
4. return the snapshot.

A range whose write was still in flight at step 1 is simply left for the
next marker, so the marker never runs ahead of the media.

:meth:`PosixWriter.read_durable` reads back bytes of the latest marker while
later blocks are still being written, so the caller can verify the object as
stored in step with the transfer instead of in a serial pass at the end.

By default writes are buffered, and the pages of bytes inside the marker are
dropped from the page cache once :meth:`read_durable` has read them, or, when
nothing reads back, at the ``durable()`` call after the one that made them
durable: a copy of any size keeps a bounded set of pages, which its later
writes reuse (driver option ``keep_cache`` turns this off).

With a :class:`~.direct.DirectFile` (driver option ``direct``), writes and
read-backs whose offset, length and memory are block-aligned bypass the page
cache; the rest, such as the object's last block, stay buffered.  Direct
writes do not take the ``pwrite`` turn, which exists for buffered writes
spinning on the inode lock; a direct write sleeps while the device works.
"""

from __future__ import annotations

import errno
import os
import threading

from transfercore.contract import Writer
from transfercore.driverkit import Intervals, check_write, fsync_dir, never_written_error, overlap_error
from transfercore.errors import InvalidRead, InvalidWrite, NoSpace, StorageError, WriterClosed, from_oserror
from transfercore.ranges import ByteRange, RangeSet

from . import names, sidecar
from .direct import DirectFile
from .fsutil import drop_cached, preadv_exact, punch_hole, pwrite_all, syncfs
from .sidecar import SidecarRecord

_OPEN, _CLOSING, _COMPLETED, _ABORTED = "open", "closing", "completed", "aborted"
#: Bytes first given up to make room for a resume record on a full file system (x4 per retry, 4 tries).
ROOM_FOR_RECORD = 1 << 20
PAGE = 4096


class PosixWriter(Writer):
    def __init__(
        self,
        *,
        fd: int,
        directory: str,
        name: str,
        display: str,
        record: SidecarRecord,
        resumed: RangeSet,
        record_stored: bool,
        serial_pwrite: bool = True,
        direct: DirectFile | None = None,
        drop_read_back: bool = True,
    ) -> None:
        self._fd = fd
        self._direct = direct
        self._drop_read_back = drop_read_back
        self._directory = directory
        self._name = name
        self._display = display
        self._record = record
        self._size = record.size
        self._resumed = resumed
        self._partial_path = os.path.join(directory, names.partial_name(name, record.token))
        self._final_path = os.path.join(directory, name)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        # Serialises durable/complete/abort with each other, not with writes.
        self._sync_lock = threading.Lock()
        self._pwrite_turn: threading.Lock | None = threading.Lock() if serial_pwrite else None
        self._done = Intervals(resumed)
        self._inflight: set[tuple[int, int]] = set()
        self._reading = 0
        self._state = _OPEN
        self._recorded: RangeSet | None = record.ranges if record_stored else None
        self._marker = resumed
        # Ranges made durable by the latest durable() call: dropped from the
        # page cache at the next call, unless a read-back is under way (it
        # drops what it reads; dropping ahead of it would send it to the device).
        self._drop_pending = RangeSet()
        self._read_back_seen = False
        self._metadata: tuple[int | None, int | None] | None = None
        # Written bytes punched out to make room for the record on a full file
        # system (see _store_record): never claimed by a marker again.
        self._given_up = RangeSet()

    # -- the Writer contract ---------------------------------------------------

    @property
    def size(self) -> int:
        return self._size

    @property
    def resumed(self) -> RangeSet:
        return self._resumed

    @property
    def partial_path(self) -> str:
        """The local path of the partial file (for tests and diagnostics)."""
        return self._partial_path

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        length = view.nbytes
        end = check_write(offset, length, self._size, self._display)
        key = (offset, end)
        with self._lock:
            if self._state != _OPEN:
                raise WriterClosed(f"writer for {self._display} is {self._state}; open a new one")
            if length == 0:
                return
            if self._done.overlaps(offset, end) or any(s < end and offset < e for s, e in self._inflight):
                raise overlap_error(self._display, offset, end)
            self._inflight.add(key)
        try:
            self._pwrite(view, offset)
        except StorageError:  # already says what to do (direct=on refused)
            self._finish(key, ok=False)
            raise
        except OSError as exc:
            self._finish(key, ok=False)
            raise from_oserror(exc, f"cannot write {offset}-{end} of {self._display}") from exc
        self._finish(key, ok=True)

    def _pwrite(self, view: memoryview, offset: int) -> None:
        direct = self._direct
        aligned = direct.aligned_length(offset, view) if direct is not None else 0
        if aligned:
            assert direct is not None
            try:
                pwrite_all(direct.fd, view[:aligned] if aligned < view.nbytes else view, offset)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                # Refused before any byte moved, or after some: either way the
                # buffered write below rewrites the same bytes, which is harmless.
                direct.refused(exc, f"{offset}-{offset + view.nbytes} of {self._display}")
                aligned = 0
            if aligned == view.nbytes:
                return
            view = view[aligned:]
            offset += aligned
        if self._pwrite_turn is not None:
            with self._pwrite_turn:
                pwrite_all(self._fd, view, offset)
        else:
            pwrite_all(self._fd, view, offset)

    # -- blocks written by the caller itself (the GridFTP server's DSI, in C) ----

    def lend_fd(self) -> int | None:
        """The partial file's descriptor, for a caller that ``pwrite``\\ s blocks
        itself (no Python object per block); ``None`` when writes must come
        through :meth:`write` (direct I/O).

        Such bytes count only once :meth:`note_written` names them, which the
        caller does only for writes that returned; no such write may be under
        way when :meth:`complete` or :meth:`abort` is called.
        """
        return self._fd if self._direct is None else None

    def note_written(self, ranges: RangeSet) -> None:
        """Record ``ranges`` as written through :meth:`lend_fd` (their ``pwrite`` returned)."""
        with self._lock:
            self._check_open()
            for r in ranges:
                check_write(r.start, r.length, self._size, self._display)
                if self._done.overlaps(r.start, r.end):
                    raise overlap_error(self._display, r.start, r.end)
            for r in ranges:
                self._done.add(r.start, r.end)

    def _finish(self, key: tuple[int, int], *, ok: bool) -> None:
        with self._lock:
            self._inflight.discard(key)
            if ok:
                self._done.add(*key)
            if not self._inflight and not self._reading:
                self._idle.notify_all()

    def read_durable(self, offset: int, buffer: bytearray | memoryview) -> None:
        """Fill ``buffer`` with the stored bytes at ``offset``, which must lie
        inside the latest marker (resumed or returned by :meth:`durable`).

        Those bytes are on media and no write may touch them again, so what is
        read here is what the completed object will hold.
        """
        view = memoryview(buffer).cast("B")
        end = offset + view.nbytes if type(offset) is int else -1
        if type(offset) is not int or offset < 0 or end > self._size:
            raise InvalidRead(f"read-back {offset!r}+{view.nbytes} of {self._display} is outside 0-{self._size}")
        if view.nbytes and not self._marker.contains(ByteRange(offset, end)):
            raise InvalidWrite(
                f"read-back {offset}-{end} of {self._display} is not inside the durable marker {self._marker}",
                hint="read back only bytes a durable() call returned",
            )
        with self._lock:
            self._check_open()
            # complete() and abort() close the descriptor: they wait for reads too.
            self._reading += 1
            self._read_back_seen = True
        try:
            got = self._read_stored(view, offset)
        finally:
            with self._lock:
                self._reading -= 1
                if not self._inflight and not self._reading:
                    self._idle.notify_all()
        if got < view.nbytes:
            raise StorageError(
                f"the partial file of {self._display} ends at {offset + got}, inside its durable marker",
                hint="something outside this transfer truncated it; run the copy again with --no-resume",
            )

    def _read_stored(self, view: memoryview, offset: int) -> int:
        what = f"cannot read back {self._display}"
        direct = self._direct
        aligned = direct.aligned_length(offset, view) if direct is not None else 0
        if aligned:
            assert direct is not None
            try:
                # Straight from the device: the check covers what is on media,
                # and the read-back does not refill the page cache.  Measured
                # on 2 GiB copies: a buffered read-back of direct-written data
                # cost 4.7-5.8 s of CPU and 6.3-7.8 s of wall time, a direct one
                # 1.3-2.0 s and 4.7-5.0 s.
                got = preadv_exact(direct.fd, view[:aligned], offset, what)
            except StorageError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                direct.refused(exc, f"a read-back of {self._display}")
            else:
                if got < aligned or aligned == view.nbytes:
                    return got
                return got + preadv_exact(self._fd, view[aligned:], offset + aligned, what)
        got = preadv_exact(self._fd, view, offset, what)
        if self._drop_read_back and got:
            # Inside the durable marker: clean pages that no write touches again.
            drop_cached(self._fd, offset, got)
        return got

    def durable(self) -> RangeSet:
        with self._sync_lock:
            with self._lock:
                self._check_open()
                snapshot = self._done.to_rangeset()
            try:
                os.fdatasync(self._fd)
            except OSError as exc:
                raise from_oserror(exc, f"cannot sync {self._display}; its last marker still holds") from exc
            snapshot = snapshot - self._given_up
            if snapshot != self._recorded:
                snapshot = self._store_record(snapshot)
                self._recorded = snapshot
            if self._drop_read_back and not self._read_back_seen:
                # Nothing reads back: give the pages back one marker late, so
                # that a copy without verification, too, recycles a bounded set
                # of pages.  (Measured: dropping them while a lagging read-back
                # still needed them made it read 650 MiB of 2 GiB from the
                # device, adding 0.3 s after the last write.)
                for r in self._drop_pending:
                    drop_cached(self._fd, r.start, r.length)
                self._drop_pending = snapshot - self._marker
            self._marker = snapshot
            return snapshot

    def _store_record(self, snapshot: RangeSet) -> RangeSet:
        """Store the record of ``snapshot``; on a full file system, make room for it.

        A storage that filled up mid-copy would otherwise keep nothing: the
        record needs a block of its own, and without a record no byte counts
        as durable.  Room is made by punching out the newest written bytes
        not yet under a marker (never bytes an earlier marker holds), which
        this writer then never claims; they are rewritten on resume.
        """
        room = ROOM_FOR_RECORD
        while True:
            try:
                sidecar.store(self._directory, self._name, self._record.with_ranges(snapshot))
                return snapshot
            except NoSpace:
                candidates = snapshot - self._marker
                if not candidates or room > ROOM_FOR_RECORD * 4**3:
                    raise
                last = candidates.ranges[-1]
                start = max(last.start, last.end - room)
                if start > last.start:
                    start = min(last.end, -(-start // PAGE) * PAGE)  # whole pages only: nothing else is zeroed
                if start == last.end:
                    start = last.start
                punch_hole(self._fd, start, last.end - start, f"cannot make room for the resume record of {self._display}")
                given_up = RangeSet.span(start, last.end)
                self._given_up = self._given_up | given_up
                snapshot = snapshot - given_up
                room *= 4

    def set_metadata(self, *, mode: int | None = None, mtime_ns: int | None = None) -> bool:
        self._metadata = (mode, mtime_ns)
        return True

    def _apply_metadata(self) -> None:
        # After the last write (a write would move the time on) and before the
        # sync that makes the object durable, so both survive together.
        if self._metadata is None:
            return
        mode, mtime_ns = self._metadata
        if mode is not None:
            os.fchmod(self._fd, mode & 0o7777)
        if mtime_ns is not None:
            os.utime(self._fd, ns=(mtime_ns, mtime_ns))

    @property
    def directory(self) -> str:
        return self._directory

    def _close_for_publish(self) -> None:
        """Wait for writes and read-backs; refuse while bytes are missing."""
        with self._lock:
            self._check_open()
            self._state = _CLOSING
            while self._inflight or self._reading:
                self._idle.wait()
            missing = self._done.to_rangeset().complement(self._size)
            if missing:
                self._state = _OPEN
                raise never_written_error(self._display, missing)

    def sync_for_batch(self, *, sync: bool = True) -> None:
        """Batch step 1 (see ``PosixDriver.complete_batch``): every byte and the
        metadata on media; the whole object becomes readable by :meth:`read_durable`.
        No resume record is stored: an object synced for a batch is published
        in the same call or aborted.  With ``sync=False`` the caller makes it
        durable with one :meth:`syncfs` for the whole batch before any read-back."""
        with self._sync_lock:
            self._close_for_publish()
            try:
                if os.fstat(self._fd).st_size != self._size:
                    os.ftruncate(self._fd, self._size)
                self._apply_metadata()
                if sync:
                    os.fsync(self._fd)
            except OSError as exc:
                with self._lock:
                    self._state = _OPEN
                raise from_oserror(exc, f"cannot sync {self._display}; it is not published") from exc
            with self._lock:
                self._state = _OPEN
                self._marker = RangeSet.of((0, self._size)) if self._size else RangeSet()

    @property
    def device(self) -> int:
        return os.fstat(self._fd).st_dev

    def syncfs(self) -> None:
        syncfs(self._fd, f"cannot sync the file system of {self._display}; the batch is not published")

    def publish_from_batch(self) -> bool:
        """Batch step 2: rename to the final name (the caller syncs the directory).
        Returns whether a resume record exists to remove once that is done."""
        with self._sync_lock:
            self._close_for_publish()
            try:
                os.rename(self._partial_path, self._final_path)
            except OSError as exc:
                with self._lock:
                    self._state = _OPEN
                raise from_oserror(exc, f"cannot publish {self._display}; the partial data is kept") from exc
            with self._lock:
                self._state = _COMPLETED
            self._close_descriptors()
            return self._recorded is not None

    def forget_record(self) -> None:
        if self._recorded is not None:
            sidecar.remove(self._directory, self._name)

    def complete(self) -> None:
        with self._sync_lock:
            self._close_for_publish()
            try:
                if os.fstat(self._fd).st_size != self._size:
                    os.ftruncate(self._fd, self._size)
                self._apply_metadata()
                os.fsync(self._fd)
                os.rename(self._partial_path, self._final_path)
            except OSError as exc:
                with self._lock:
                    self._state = _OPEN
                raise from_oserror(exc, f"cannot publish {self._display}; the partial data is kept") from exc
            with self._lock:
                self._state = _COMPLETED
            self._close_descriptors()
            fsync_dir(self._directory)
            if self._recorded is not None and sidecar.remove(self._directory, self._name):
                # A stale record left by a crash here would be harmless (its partial
                # file is gone), but syncing keeps the directory clean.
                fsync_dir(self._directory)

    def abort(self) -> None:
        with self._sync_lock:
            with self._lock:
                if self._state in (_COMPLETED, _ABORTED):
                    return
                self._state = _CLOSING
                # Closing the descriptor under a running pwrite could let a new
                # file reuse the number and receive the bytes: wait for writes
                # (and read-backs, which could otherwise read another file).
                while self._inflight or self._reading:
                    self._idle.wait()
                self._state = _ABORTED
            self._close_descriptors()

    # -- helpers ---------------------------------------------------------------

    def _close_descriptors(self) -> None:
        if self._direct is not None:
            self._direct.close()
        os.close(self._fd)

    def _check_open(self) -> None:
        if self._state != _OPEN:
            raise WriterClosed(f"writer for {self._display} is {self._state}; open a new one")

    def __repr__(self) -> str:
        return f"PosixWriter({self._display!r}, size={self._size}, state={self._state})"
