"""Uploads whose blocks never enter Python: the C data path (``tc_sink_*`` in ``csrc/dsi_glue.c``).

When the driver's writer lends its partial file's descriptor
(``Writer.lend_fd()``, the posix driver), each block the server receives is
written with ``pwrite`` by the C read callback, in the Globus thread that
received it; no Python object, no GIL per block.  Python keeps the decisions:

* the durability thread (off the data path) takes the ranges whose
  ``pwrite`` returned, tells the writer (``note_written``), calls
  ``durable()`` and queues the new durable ranges in C, where a Globus
  thread (the next read callback, or a Globus timer while data stall) hands
  them to the server for its next ``111``;
* between ``durable()`` calls it starts the writeback of what is dirty
  (``sync_file_range``, not waiting), so the disk works while the network
  does and the last flush before ``226`` finds little left;
* after the last block (``tc_py_sink_done``, a Globus thread) the last
  ``durable()`` and ``complete()`` run as for the Python path
  (:meth:`Upload.finish`).
"""

from __future__ import annotations

import os
from typing import Any

from transfercore.contract import Writer
from transfercore.errors import TransferCoreError, from_oserror
from transfercore.ranges import RangeSet

from . import glue
from .session import Session
from .upload import REPORT_PERIOD, Upload

#: seconds between writeback kicks in the durability thread
KICK_PERIOD = 0.25


class SinkUpload(Upload):
    """A plain STOR into a writer that lends its descriptor: blocks written in C."""

    def __init__(self, session: Session, op: Any, path: str, writer: Writer, fd: int) -> None:
        super().__init__(session, op, path, writer)
        self.data_path = "pwrite in C"
        self.sink = glue.lib.tc_sink_new(op, fd, writer.size, self.handle)
        if self.sink == glue.ffi.NULL:
            glue.release(self)
            raise TransferCoreError(f"cannot start the upload of {path}: out of memory")
        for r in writer.resumed:
            # bytes the writer holds already: a block landing on them fails the upload
            if glue.lib.tc_sink_claim(self.sink, r.start, r.end) != 0:
                raise TransferCoreError(f"cannot start the upload of {path}: its resumed ranges overlap")
        self._noted = RangeSet()
        #: room for the written ranges' pairs; grows when there are more (one pair for most uploads)
        self._pairs = glue.ffi.new("globus_off_t[]", 16)
        self._collected = False

    def begin(self, buffers: int, block: int, period: float) -> None:
        """Register the reads (a Globus thread, after ``begin_transfer``): from here on C drives."""
        assert self.writer is not None
        # No block lies past the announced size, so a small upload needs no larger buffers: the
        # server's block size (256 KiB) allocated and freed by C for every file of a tree moved
        # the heap's top up and back (three brk calls and fresh pages a file).
        block = max(1, min(block, self.writer.size))
        self.block = block
        report = max(0.1, min(period, REPORT_PERIOD)) if self.ticking and self.session.config.markers != "off" else 0.0
        glue.lib.tc_sink_start(self.sink, buffers, block, report)

    def _write_slots(self) -> None:
        return None  # no block passes through Python (three fewer thread primitives per file)

    # -- the durability thread ---------------------------------------------------------

    def _wants_ticks(self) -> bool:
        # with markers off too: the durability thread starts writeback between looks
        return not self.small

    def _start_pump(self, period: float) -> None:
        pass  # C's own timer (tc_sink_start)

    def tick_every(self) -> float:
        return min(self._period, KICK_PERIOD)

    def _between_markers(self) -> None:
        err = glue.lib.tc_sink_kick(self.sink)
        if err:
            raise from_oserror(OSError(err, os.strerror(err)), f"cannot start writing back {self.path}")

    def written(self) -> RangeSet:
        """The ranges whose ``pwrite`` returned."""
        while True:
            room = len(self._pairs) // 2
            n = glue.lib.tc_sink_written(self.sink, self._pairs, room)
            if n <= room:
                break
            self._pairs = glue.ffi.new("globus_off_t[]", 4 * n)
        pairs = self._pairs
        if n == 1:
            # the usual answer (blocks join up as they arrive): no normalizing of one range
            return RangeSet.span(int(pairs[0]), int(pairs[1]))
        return RangeSet.of(*((int(pairs[2 * i]), int(pairs[2 * i + 1])) for i in range(n)))

    def bytes_received(self) -> int:
        received = glue.ffi.new("globus_off_t *")
        callbacks = glue.ffi.new("long *")
        seconds = glue.ffi.new("double *")
        errnum = glue.ffi.new("int *")
        error = glue.ffi.new("char[]", 8)
        glue.lib.tc_sink_stats(self.sink, received, callbacks, seconds, errnum, error, 8)
        return int(received[0])

    def _before_durable(self) -> None:
        done = self.written()
        new = done - self._noted if self._noted else done
        if new:
            assert self.writer is not None
            self.writer.note_written(new)  # type: ignore[attr-defined]
            self._noted = done

    def _queue(self, fresh: RangeSet) -> None:
        for r in fresh:
            if glue.lib.tc_sink_queue(self.sink, r.start, r.length) != 0:
                raise TransferCoreError(f"cannot queue the restart marker of {self.path}: out of memory")

    # -- Globus threads ----------------------------------------------------------------

    def _report(self, last: bool = False) -> None:
        glue.lib.tc_sink_report(self.sink, 1 if last else 0)

    def _collect(self) -> None:
        """What C counted, and why it failed (once, after the last callback)."""
        if self._collected:
            return
        self._collected = True
        received = glue.ffi.new("globus_off_t *")
        callbacks = glue.ffi.new("long *")
        seconds = glue.ffi.new("double *")
        errnum = glue.ffi.new("int *")
        error = glue.ffi.new("char[]", 1024)
        glue.lib.tc_sink_stats(self.sink, received, callbacks, seconds, errnum, error, 1024)
        self.received = int(received[0])
        self.callbacks = int(callbacks[0])
        self.write_seconds = float(seconds[0])
        message = glue.text(error)
        if message and self.error is None:
            if errnum[0]:
                self.error = from_oserror(OSError(errnum[0], os.strerror(errnum[0])), f"{self.path}: {message}")
            else:
                self.error = TransferCoreError(f"{self.path}: {message}")

    def on_done(self) -> None:
        """The last read callback returned (a Globus thread): finish as the Python path does."""
        with self.lock:
            if self.finished:
                return
            self.finished = True
        self._collect()
        self.finish()

    def _complete(self) -> None:
        with self.durable_lock:
            # every written block, also with markers off: complete() checks they cover the object
            self._before_durable()
        super()._complete()

    def _queue_whole(self, size: int) -> None:
        if glue.lib.tc_sink_queue(self.sink, 0, size) != 0:
            raise TransferCoreError(f"cannot queue the restart marker of {self.path}: out of memory")

    def _keep_partial(self) -> None:
        try:
            with self.durable_lock:
                self._before_durable()
        except BaseException as exc:
            self.error = self.error or exc
        super()._keep_partial()

    def _stop_pump(self, release: bool) -> None:
        # C frees the sink once its timer can no longer fire, then releases this upload
        if release:
            glue.lib.tc_sink_release(self.sink)

    def abandon(self, exc: BaseException) -> None:
        # only a failure of Python's own in on_done gets here, before finished_transfer: end the transfer
        self.ended = True
        glue.lib.globus_gridftp_server_finished_transfer(self.op, glue.error_result(exc))


__all__ = ["KICK_PERIOD", "SinkUpload"]
