"""Uploads (STOR): Globus read callbacks into a driver writer, 111 markers from ``durable()``."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from transfercore.contract import Writer
from transfercore.errors import CapabilityError, InvalidWrite, TransferCoreError
from transfercore.ranges import RangeSet

from . import glue
from .restart import held_marker, new_ranges
from .session import Session

log = logging.getLogger("transfercore.globus_dsi")



class Upload:
    """One STOR/ESTO: Globus read callbacks into a driver writer, markers from ``durable()``."""

    def __init__(self, session: Session, op: Any, path: str, writer: Writer | None, spool: Any = None) -> None:
        self.session = session
        self.op = op
        self.path = path
        self.writer = writer
        self.spool = spool
        self.lock = threading.Lock()
        self.pending = 0
        self.eof = False
        self.error: BaseException | None = None
        self.finished = False
        self.reported = writer.resumed if writer is not None else RangeSet()
        self.to_report: list[RangeSet] = []
        self.received = 0
        self.python_seconds = 0.0
        self.write_seconds = 0.0
        #: durable() in the marker thread, off the data path
        self.flush_seconds = 0.0
        self.flush_calls = 0
        #: the last durable() and complete() (or abort()), in a Globus thread after the last byte
        self.final_seconds = 0.0
        self.callbacks = 0
        self.buffers: list[Any] = []
        self.block = 0
        self.stop = threading.Event()
        self.flusher: threading.Thread | None = None
        caps = session.driver.capabilities()
        self.write_slots = threading.BoundedSemaphore(max(1, caps.max_writers))
        self.handle = glue.keep(self)

    # the durable() thread: never calls Globus
    def start_flusher(self, period: float) -> None:
        if self.writer is None or self.session.config.markers == "off":
            return
        self.flusher = threading.Thread(target=self._flush_loop, args=(period,), name="tc-dsi-durable", daemon=True)
        self.flusher.start()

    def _flush_loop(self, period: float) -> None:
        assert self.writer is not None
        while not self.stop.wait(period):
            try:
                t = time.perf_counter()
                marker = self.writer.durable()
                self.flush_seconds += time.perf_counter() - t
                self.flush_calls += 1
            except BaseException as exc:  # a failed flush fails the upload
                log.error("durable() failed for %s: %s", self.path, exc)
                with self.lock:
                    if self.error is None:
                        self.error = exc
                return
            self._queue_marker(marker)

    def _queue_marker(self, marker: RangeSet) -> None:
        with self.lock:
            fresh = new_ranges(marker, self.reported)
            if fresh:
                self.reported = self.reported | fresh
                self.to_report.append(fresh)

    def _report(self) -> None:
        """Hand queued durable ranges to the server (Globus thread only)."""
        with self.lock:
            batches, self.to_report = self.to_report, []
        for batch in batches:
            for r in batch:
                glue.lib.globus_gridftp_server_update_range_recvd(self.op, r.start, r.length)

    def register(self, buf: Any, size: int) -> None:
        result = glue.lib.globus_gridftp_server_register_read(self.op, buf, size, glue.lib.tc_py_read_cb, self.handle)
        if result != glue.lib.GLOBUS_SUCCESS:
            raise TransferCoreError(f"the server refused a data read: {glue.result_text(result)}")

    def on_read(self, result: int, buf: Any, nbytes: int, offset: int, eof: bool) -> None:
        start = time.perf_counter()
        failed = result != glue.lib.GLOBUS_SUCCESS
        if failed:
            with self.lock:
                if self.error is None:
                    self.error = TransferCoreError(f"the data connection failed: {glue.result_text(result)}")
        elif nbytes:
            try:
                view = memoryview(glue.ffi.buffer(buf, nbytes))
                t = time.perf_counter()
                if self.spool is not None:
                    self.spool.write(offset, view)
                else:
                    assert self.writer is not None
                    with self.write_slots:
                        self.writer.write(offset, view)
                spent = time.perf_counter() - t
                with self.lock:
                    self.write_seconds += spent
                glue.lib.globus_gridftp_server_update_bytes_recvd(self.op, nbytes)
            except BaseException as exc:
                with self.lock:
                    if self.error is None:
                        self.error = exc
        self._report()
        again = False
        with self.lock:
            self.pending -= 1
            self.received += nbytes
            self.callbacks += 1
            if eof:
                self.eof = True
            if not self.eof and self.error is None:
                self.pending += 1
                again = True
        if again:
            try:
                self.register(buf, self.block)
            except BaseException as exc:
                with self.lock:
                    self.pending -= 1
                    if self.error is None:
                        self.error = exc
        with self.lock:
            self.python_seconds += time.perf_counter() - start
            done = self.pending == 0 and not self.finished and (self.eof or self.error is not None)
            if done:
                self.finished = True
        if done:
            self.finish()

    def abandon(self, exc: BaseException) -> None:
        """A bug escaped a callback: end the transfer with the error rather than leave the client waiting."""
        with self.lock:
            if self.finished:
                return
            self.finished = True
        self.stop.set()
        if self.flusher is not None:
            self.flusher.join()
        self._keep_partial()
        self._report()
        glue.lib.globus_gridftp_server_finished_transfer(self.op, glue.error_result(exc))

    def finish(self) -> None:
        """After the last callback: make it durable and complete, or keep the partial (Globus thread)."""
        glue.lib.tc_will_block()
        self.stop.set()
        if self.flusher is not None:
            self.flusher.join()
        error = self.error
        t = time.perf_counter()
        try:
            if error is None:
                self._complete()
        except BaseException as exc:
            error = exc
        if error is not None:
            self._keep_partial()
        self.final_seconds = time.perf_counter() - t
        self._report()
        log.info(
            "upload %s: %d bytes in %d data callbacks; %.3f s in Python on Globus data threads, "
            "%.3f s of it in Writer.write; durable() %d times in the marker thread, %.3f s; "
            "final durable() and complete() %.3f s%s",
            self.path, self.received, self.callbacks, self.python_seconds, self.write_seconds,
            self.flush_calls, self.flush_seconds, self.final_seconds,
            f"; failed: {error}" if error is not None else "",
        )
        if error is not None and not isinstance(error, TransferCoreError):
            log.error("upload %s failed: %s: %s", self.path, type(error).__name__, error)
        elif error is not None:
            log.warning("upload %s failed: %s", self.path, error)
        glue.lib.globus_gridftp_server_finished_transfer(self.op, glue.lib.GLOBUS_SUCCESS if error is None else glue.error_result(error))
        if self.spool is not None:
            self.spool.close()
        glue.release(self)

    def _complete(self) -> None:
        if self.spool is not None:
            got = self.spool.received()
            size = got.end()
            if got != RangeSet.span(0, size):
                raise InvalidWrite(f"the upload of {self.path} left holes: received {got or 'nothing'}")
            writer = self.session.driver.open_write(self.path, size, None)
            try:
                self.spool.copy_into(writer)
                writer.complete()
            except BaseException:
                writer.abort()
                raise
            return
        assert self.writer is not None
        if self.session.config.markers != "off":
            self._queue_marker(self.writer.durable())
        self.writer.complete()

    def _keep_partial(self) -> None:
        if self.writer is None:
            return
        try:
            if self.session.config.markers != "off":
                self._queue_marker(self.writer.durable())
        except BaseException as exc:
            log.warning("no final marker for %s: %s", self.path, exc)
        try:
            self.writer.abort()
        except BaseException as exc:
            log.warning("abort of %s failed: %s", self.path, exc)


def _ranges(range_list: Any) -> list[tuple[int, int]]:
    out = []
    off = glue.ffi.new("globus_off_t *")
    length = glue.ffi.new("globus_off_t *")
    for i in range(glue.lib.globus_range_list_size(range_list)):
        glue.lib.globus_range_list_at(range_list, i, off, length)
        out.append((int(off[0]), int(length[0])))
    return out


def do_recv(session: Session, op: Any, info: Any) -> None:
    path = session.path(glue.text(info.pathname))
    if info.partial_offset > 0:
        raise CapabilityError("ESTO with an offset is not supported by the transfercore DSI; use STOR with REST")
    size = int(info.alloc_size) if info.alloc_size > 0 else None
    held = held_marker(_ranges(info.range_list), size)
    # sets the server's write offsets; the hint itself is not needed
    glue.lib.globus_gridftp_server_get_write_range(op, glue.ffi.NULL, glue.ffi.NULL)
    caps = session.driver.capabilities()
    writer: Writer | None = None
    spool = None
    if size is None:
        from transfercore.gridftp.spool import Spool

        spool = Spool(session.config.spool)
    else:
        writer = session.driver.open_write(path, size, held)
    upload = Upload(session, op, path, writer, spool)
    if caps.ordered_writes:
        glue.lib.globus_gridftp_server_set_ordered_data(op, 1)
    concurrency = glue.ffi.new("int *")
    block = glue.ffi.new("globus_size_t *")
    glue.lib.globus_gridftp_server_get_optimal_concurrency(op, concurrency)
    glue.lib.globus_gridftp_server_get_block_size(op, block)
    interval = glue.ffi.new("int *")
    glue.lib.globus_gridftp_server_get_update_interval(op, interval)
    glue.lib.globus_gridftp_server_begin_transfer(op, 0, glue.ffi.NULL)
    upload.start_flusher(session.config.durable_period(float(interval[0] or 5)))
    log.info(
        "upload %s: size %s, resume %s, %d buffers of %d bytes%s",
        path, size, held or "none", concurrency[0], block[0], ", ordered" if caps.ordered_writes else "",
    )
    with upload.lock:
        upload.pending = max(1, concurrency[0])
    upload.block = max(1, int(block[0]))
    for _ in range(max(1, concurrency[0])):
        upload.buffers.append(glue.ffi.new("globus_byte_t[]", upload.block))
    for buf in upload.buffers:
        try:
            upload.register(buf, upload.block)
        except BaseException as exc:
            with upload.lock:
                upload.pending -= 1
                if upload.error is None:
                    upload.error = exc
                done = upload.pending == 0 and not upload.finished
                if done:
                    upload.finished = True
            if done:
                upload.finish()
