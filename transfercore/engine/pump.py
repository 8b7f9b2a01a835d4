"""The streams: threads that read blocks from the source and write them to the destination.

Each stream holds one block at a time, so memory stays near
``streams x block size``.  Each stream reads every block with
``Reader.readinto`` into one page-aligned buffer it maps once (see
:mod:`.buffers`), instead of a new ``bytes`` per block: no allocation, no page faults on fresh memory, and the buffer stays warm in
the CPU cache between the read, the hash and the write.  Blocks are taken in ascending order; reorder windows
(:class:`transfercore.reorder.ReorderWindow`, the one ordering piece every
front end shares) keep reads, writes and the running checksum in order where
the drivers or the hash need it.  The engine's windows hold nothing
(``capacity=0``): a stream waits with its own block until that block is
next, so memory stays at one block per stream.  No stream ever reports anything to
listeners: the transfer's control thread reads the counters.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ..checksums import Hasher
from ..contract import Reader, Writer
from ..ranges import ByteRange, RangeSet
from ..reorder import ReorderWindow, Stopped
from .buffers import aligned_buffer
from .scheduler import Block


def _spans(blocks: Sequence[Block]) -> RangeSet:
    return RangeSet(tuple(ByteRange(b.start, b.end) for b in blocks))


class Pump:
    def __init__(
        self,
        reader: Reader,
        writer: Writer,
        blocks: Sequence[Block],
        *,
        streams: int,
        max_writers: int,
        ordered_reads: bool,
        ordered_writes: bool,
        hasher: Hasher | None,
        wake: threading.Event,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._blocks = blocks
        self._buffer_size = max((b.length for b in blocks), default=0)
        self._streams = max(1, min(streams, len(blocks)))
        self._write_slots = threading.BoundedSemaphore(max(1, max_writers))
        every = _spans(blocks)
        self._read_turn = ReorderWindow(every) if ordered_reads else None
        self._write_turn = (
            ReorderWindow(_spans([b for b in blocks if b.write]), self._sink) if ordered_writes else None
        )
        self._hash_turn = ReorderWindow(every, self._hash) if hasher is not None else None
        self._hasher = hasher
        self._wake = wake
        self._lock = threading.Lock()
        self._next = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running = 0
        self._written: list[ByteRange] = []
        self.bytes_sent = 0
        self.bytes_read = 0
        #: The control thread is woken when bytes_sent reaches this value.
        self.wake_at: int | None = None
        #: Streams wait before writing while bytes_sent is at least this value
        #: (set by :meth:`hold`), which bounds the bytes not yet under a marker.
        self._hold_at: int | None = None
        self._hold_cond = threading.Condition(self._lock)
        self.error: BaseException | None = None

    # -- control ---------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            self._running = self._streams
        for i in range(self._streams):
            thread = threading.Thread(target=self._work, name=f"tc-stream-{i}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def hold(self, at: int | None) -> None:
        """Make streams wait before a write once ``at`` bytes were sent (None: never)."""
        with self._lock:
            self._hold_at = at
            self._hold_cond.notify_all()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            self._hold_cond.notify_all()
        for turn in (self._read_turn, self._write_turn, self._hash_turn):
            if turn is not None:
                turn.stop()

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    @property
    def finished(self) -> bool:
        with self._lock:
            return self._running == 0

    def written(self) -> RangeSet:
        """The ranges whose write has returned (accepted, not necessarily durable)."""
        with self._lock:
            merged = RangeSet(tuple(self._written))
            self._written = list(merged.ranges)
        return merged

    # -- the streams -------------------------------------------------------------

    def _take(self) -> Block | None:
        with self._lock:
            if self._stop.is_set() or self._next >= len(self._blocks):
                return None
            block = self._blocks[self._next]
            self._next += 1
            return block

    def _work(self) -> None:
        try:
            buffer = aligned_buffer(self._buffer_size)
            while True:
                block = self._take()
                if block is None:
                    return
                data = self._read(block, buffer)
                # Hash before writing: reads and hashing are fast, so the
                # in-order hash turn passes quickly, and a write stalled by the
                # storage does not hold back the other streams' writes.
                if self._hash_turn is not None:
                    self._hash_turn.put(block.start, data)
                if block.write:
                    self._write(block, data)
                del data
        except Stopped:
            pass
        except BaseException as exc:  # reported to the control thread, which re-raises it
            with self._lock:
                if self.error is None:
                    self.error = exc
            self.stop()
        finally:
            with self._lock:
                self._running -= 1
            self._wake.set()

    def _sink(self, offset: int, data: memoryview) -> None:
        self._writer.write(offset, data)

    def _hash(self, offset: int, data: memoryview) -> None:
        assert self._hasher is not None
        self._hasher.update(data)

    def _read_one(self, block: Block, buffer: memoryview) -> memoryview:
        view = buffer[: block.length]
        # readinto fills the whole view or raises: a short read is an error.
        self._reader.readinto(block.start, view)
        return view

    def _read(self, block: Block, buffer: memoryview) -> memoryview:
        if self._read_turn is not None:
            # On failure the turn is not passed on: the error stops every stream.
            with self._read_turn.turn(block.start, block.length):
                data = self._read_one(block, buffer)
        else:
            data = self._read_one(block, buffer)
        with self._lock:
            self.bytes_read += block.length
        return data

    def _wait_for_marker(self) -> None:
        with self._lock:
            while self._hold_at is not None and self.bytes_sent >= self._hold_at:
                if self._stop.is_set():
                    raise Stopped()
                self._wake.set()
                self._hold_cond.wait(0.5)
        if self._stop.is_set():
            raise Stopped()

    def _write(self, block: Block, data: bytes | memoryview) -> None:
        self._wait_for_marker()
        if self._write_turn is not None:
            # On failure the turn is not passed on, so no later block can be
            # written after a hole; the error stops every stream.
            self._write_turn.put(block.start, data)
        else:
            with self._write_slots:
                self._writer.write(block.start, data)
        with self._lock:
            self._written.append(ByteRange(block.start, block.end))
            self.bytes_sent += block.length
            wake = self.wake_at is not None and self.bytes_sent >= self.wake_at
        if wake:
            self._wake.set()
