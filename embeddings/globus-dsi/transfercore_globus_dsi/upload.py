"""Uploads (STOR, ESTO): Globus read callbacks into a driver writer, 111 markers from ``durable()``.

An ``ESTO`` (``globus-url-copy -off N -len M``) updates the object in place,
as the server's own file storage does: the server hands the DSI the data at
object offsets (``N`` onwards) and does not truncate; the new version is
written whole through the driver's writer, the object's other bytes copied
around the slice (:mod:`transfercore.gridftp.inplace`, the plan of
:mod:`transfercore.gridftp.upload`), and published at once, so a cut update
leaves the object as it was.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from transfercore.capabilities import RestartModel
from transfercore.contract import Writer
from transfercore.errors import InvalidWrite, TransferCoreError
from transfercore.markers import MarkerCursor, MarkerPolicy
from transfercore.ranges import RangeSet

from . import glue
from .session import Session

if TYPE_CHECKING:
    from transfercore.gridftp.upload import StorePlan

# The GridFTP front end's modules (transfercore.gridftp: the spool, in-place
# updates) are imported where they are used: a plain STOR needs none of them,
# and every session is a new process that would pay for importing them.

log = logging.getLogger("transfercore.globus_dsi")
#: at most this long (s) between ``durable()`` queuing a range and the server holding it for its next 111
#: (the flush period when shorter, but at least 0.1 s: each tick takes the GIL on the event thread)
REPORT_PERIOD = 1.0
#: an upload announced (ALLO) smaller than this gets no durability work while it arrives: it
#: ends long before a flush period would, complete() makes it durable, and a restart would
#: send little again; the durability thread, the marker timer and their wake-ups per file are
#: what a tree of small files does not need
SMALL_UPLOAD = 1 << 20
#: what an update's copy of its kept bytes is given to stop it: never set (it runs to its end or fails)
_NEVER = threading.Event()


def _same(ranges: RangeSet) -> RangeSet:
    return ranges


class Upload:
    """One STOR/ESTO: Globus read callbacks into a driver writer, markers from ``durable()``."""

    def __init__(
        self, session: Session, op: Any, path: str, writer: Writer | None, spool: Any = None,
        plan: StorePlan | None = None,
    ) -> None:
        self.session = session
        #: the update an ESTO makes (``None`` for a STOR): where its slice lands, what it keeps
        self.plan = plan
        self.op = op
        self.path = path
        self.writer = writer
        self.spool = spool
        self.lock = threading.Lock()
        self.pending = 0
        self.eof = False
        self.error: BaseException | None = None
        self.finished = False
        #: finished_transfer was called
        self.ended = False
        #: the restart markers: asks durable(), checks each answer grows, gives what is new;
        #: an update's kept bytes are no data of this upload, so only its slice is reported
        own = plan.slice(plan.size) if plan is not None and plan.size is not None else None
        self.markers = MarkerCursor(
            writer.resumed if writer is not None else spool.resumed if spool is not None else None,
            view=(lambda r: r & own) if own is not None else _same,
        )
        #: one durable() at a time: the marker thread's and the final one
        self.durable_lock = threading.Lock()
        self.to_report: list[RangeSet] = []
        self.received = 0
        self.python_seconds = 0.0
        self.write_seconds = 0.0
        #: durable() in the marker thread, off the data path
        self.flush_seconds = 0.0
        self.flush_calls = 0
        #: complete() (or the last durable() and abort()), in a Globus thread after the last byte
        self.final_seconds = 0.0
        self.callbacks = 0
        #: where the blocks are written: Writer.write per block, or C (see :mod:`.sink`)
        self.data_path = "Writer.write from Python"
        self.buffers: list[Any] = []
        self.block = 0
        #: no more durability work (the durability thread reads it; nothing waits on it)
        self.stopped = False
        #: the session's durability thread looks at this upload (see :mod:`.flusher`)
        self.ticking = False
        self.tick_lock = threading.Lock()
        self.flush_failed = False
        self._period = 1.0
        #: the period of an upload of unknown size whose durability work waits until it is not small
        self._late_period: float | None = None
        #: held while ranges go to the server, so none goes after ``finished_transfer``
        self.report_lock = threading.RLock()
        self.reports_closed = False
        #: the Globus timer that hands queued ranges to the server while no data arrive
        self.pump: int | None = None
        self.write_slots = self._write_slots()
        self.handle = glue.keep(self)

    def _write_slots(self) -> threading.BoundedSemaphore | None:
        """Writes of one object at once on the Python data path."""
        return threading.BoundedSemaphore(max(1, self.session.driver.capabilities().max_writers))

    # the durability thread never calls Globus: a Globus timer hands its ranges over (Globus thread)
    def start_flusher(self, period: float) -> None:
        if not self._wants_ticks():
            return
        if self.spool is not None and self.received < SMALL_UPLOAD:
            # An upload of unknown size (no ALLO: every file of a -pp tree) gets its durability
            # work once it is past what a small upload is (on_read): a thread wake-up and a
            # timer per file were most of the thread hand-offs of a pipelined tree.
            self._late_period = period
            return
        self._start_ticks(period)

    def _start_late(self, period: float) -> None:
        """The durability work of an upload of unknown size that grew past a small one (a Globus
        data thread, with a read of this upload outstanding, so it cannot finish meanwhile)."""
        with self.report_lock:
            # an upload abandoned meanwhile has reported its last ranges: no timer after that
            if self.reports_closed or self.stopped:
                return
            try:
                self._start_ticks(period)
            except RuntimeError as exc:  # the session is closing: the upload goes on without markers
                log.warning("no restart markers for %s: %s", self.path, exc)
                return
        if self.stopped:  # stopped while it started: whoever stopped it may not have seen it ticking
            self._stop_ticks()

    def _start_ticks(self, period: float) -> None:
        self._period = period
        # the core's rule, on the period the configuration chose: no flush when nothing new arrived
        self.markers.policy = MarkerPolicy(interval=period, bytes=None)
        self.markers.mark_taken(time.monotonic(), 0)
        self.session.flusher.add(self)
        self.ticking = True
        self._start_pump(period)

    def _wants_ticks(self) -> bool:
        return self.session.config.markers != "off" and self._restartable() and not self.small

    @property
    def small(self) -> bool:
        return self.writer is not None and self.writer.size < SMALL_UPLOAD

    def _start_pump(self, period: float) -> None:
        # Without it, ranges made durable while the client's data stall would wait for the
        # next read callback, and the server would send no 111 for them.
        handle = glue.ffi.new("int *")
        result = glue.lib.tc_periodic_start(
            max(0.1, min(period, REPORT_PERIOD)), glue.lib.tc_py_report_cb, self.handle, handle
        )
        if result == glue.lib.GLOBUS_SUCCESS:
            self.pump = int(handle[0])
        else:
            log.warning("no marker timer for %s (markers only as data arrive): %s", self.path, glue.result_text(result))

    def _stop_ticks(self) -> None:
        """No durability work for this upload after this returns."""
        self.stopped = True
        if self.ticking:
            self.session.flusher.remove(self)
            self.ticking = False

    def _restartable(self) -> bool:
        """Whether anything can be made durable: a writer, or a spool with a record."""
        return self.writer is not None or (self.spool is not None and bool(self.spool.restartable))

    def _stop_pump(self, release: bool) -> None:
        """Stop the timer (Globus thread); with ``release``, let the upload go once it can no longer fire."""
        if self.pump is None:
            if release:
                glue.release(self)
            return
        pump, self.pump = self.pump, None
        done = glue.lib.tc_py_report_stopped if release else glue.ffi.NULL
        result = glue.lib.tc_periodic_stop(pump, done, self.handle)
        if result != glue.lib.GLOBUS_SUCCESS:
            # the upload stays alive: a timer that may still fire must find it
            log.warning("the marker timer of %s did not stop: %s", self.path, glue.result_text(result))

    def tick_every(self) -> float:
        return self._period

    def tick(self) -> None:
        """One look of the durability thread (under ``tick_lock``): a ``durable()`` when due."""
        if self.stopped or self.flush_failed:
            return
        try:
            self._between_markers()
            if self.session.config.markers == "off" or not self.markers.due(time.monotonic(), self.bytes_received()):
                return
            self.markers.mark_taken(time.monotonic(), self.bytes_received())
            t = time.perf_counter()
            self._take_marker()
            self.flush_seconds += time.perf_counter() - t
            self.flush_calls += 1
        except BaseException as exc:  # a failed flush fails the upload
            log.error("durable() failed for %s: %s", self.path, exc)
            self.flush_failed = True
            with self.lock:
                if self.error is None:
                    self.error = exc

    def _between_markers(self) -> None:
        """Work for the durability thread at each look (none here)."""

    def bytes_received(self) -> int:
        return self.received

    def _before_durable(self) -> None:
        """Called under ``durable_lock`` right before ``durable()``."""

    def _take_marker(self) -> None:
        """Ask the writer (or the spool) what is durable; queue what is new for the next Globus callback."""
        target = self.writer if self.writer is not None else self.spool
        assert target is not None
        with self.durable_lock:
            self._before_durable()
            fresh = self.markers.take(target)
        if fresh:
            self._queue(fresh)

    def _queue(self, fresh: RangeSet) -> None:
        with self.lock:
            self.to_report.append(fresh)

    def _queue_whole(self, size: int) -> None:
        """Queue ``0-size`` for the server's next 111."""
        self._queue(RangeSet.span(0, size))

    def on_timer(self) -> None:
        """The marker timer fired (Globus thread): hand over what ``durable()`` queued meanwhile."""
        self._report()

    def _report(self, last: bool = False) -> None:
        """Hand queued durable ranges to the server (Globus thread only); ``last`` before ``finished_transfer``."""
        with self.report_lock:
            if self.reports_closed:
                return
            with self.lock:
                batches, self.to_report = self.to_report, []
            for batch in batches:
                for r in batch:
                    glue.lib.globus_gridftp_server_update_range_recvd(self.op, r.start, r.length)
            if last:
                self.reports_closed = True

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
                first = self.plan.offset if self.plan is not None else 0
                if offset < first or (
                    self.plan is not None and self.plan.size is not None and offset + nbytes > first + self.plan.size
                ):
                    raise InvalidWrite(f"data at {offset}-{offset + nbytes} lie outside the announced upload")
                if self.spool is not None:
                    # the spool holds the data at their data offsets, as in transfercore serve
                    self.spool.write(offset - first, view)
                else:
                    assert self.writer is not None and self.write_slots is not None
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
        late = None
        with self.lock:
            self.pending -= 1
            self.received += nbytes
            self.callbacks += 1
            if eof:
                self.eof = True
            if not self.eof and self.error is None:
                self.pending += 1
                again = True
                if self._late_period is not None and self.received >= SMALL_UPLOAD:
                    late, self._late_period = self._late_period, None
        if late is not None:
            self._start_late(late)
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
        self._stop_ticks()
        self._keep_partial()
        self._report(last=True)
        glue.lib.globus_gridftp_server_finished_transfer(self.op, glue.error_result(exc))
        # other read callbacks may still hold the handle: the upload stays alive
        self._stop_pump(release=False)

    def finish(self) -> None:
        """After the last callback: make it durable and complete, or keep the partial (Globus thread)."""
        glue.lib.tc_will_block()
        self._stop_ticks()
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
        self._report(last=True)
        log.info(
            "upload %s: %d bytes in %d data callbacks; %.3f s in Python on Globus data threads, "
            "%.3f s writing (%s); durable() %d times in the durability thread, %.3f s; "
            "complete() after the last byte %.3f s%s",
            self.path, self.received, self.callbacks, self.python_seconds, self.write_seconds, self.data_path,
            self.flush_calls, self.flush_seconds, self.final_seconds,
            f"; failed: {error}" if error is not None else "",
        )
        if error is not None and not isinstance(error, TransferCoreError):
            log.error("upload %s failed: %s: %s", self.path, type(error).__name__, error)
        elif error is not None:
            log.warning("upload %s failed: %s", self.path, error)
        self.ended = True
        glue.lib.globus_gridftp_server_finished_transfer(self.op, glue.lib.GLOBUS_SUCCESS if error is None else glue.error_result(error))
        if self.spool is not None:
            if error is None:
                self.spool.discard()
            else:
                self.spool.close()
        self._stop_pump(release=True)

    def _complete(self) -> None:
        plan = self.plan
        if self.spool is not None:
            from transfercore.gridftp.spooled import store_spooled

            store_spooled(self.session.driver, self.spool, self.path, plan)
            return
        assert self.writer is not None
        if plan is not None and plan.size is not None:
            self._copy_kept(self.writer, plan.kept(plan.size)[1])
        self.writer.complete()
        if self.session.config.markers != "off" and self.session.driver.capabilities().restart is not RestartModel.NONE:
            # complete() made the whole object durable: the last 111 names what the earlier ones
            # did not, without a durable() before it (a flush and a resume record complete() makes moot)
            size = self.writer.size
            with self.durable_lock:
                if plan is None and not self.markers.reported:
                    # nothing named yet (a fresh upload that had no marker: every file of a tree):
                    # all of it is new, with none of the cursor's checks against earlier answers
                    if size:
                        self._queue_whole(size)
                    return
                fresh = self.markers.accept(RangeSet.span(0, size))
            if fresh:
                self._queue(fresh)

    def _copy_kept(self, writer: Writer, ranges: RangeSet) -> None:
        from transfercore.gridftp.inplace import copy_kept

        assert self.plan is not None
        copy_kept(self.session.driver, self.path, self.plan.base or 0, writer, ranges, _NEVER)

    def _keep_partial(self) -> None:
        if not self._restartable():
            return
        try:
            if self.session.config.markers != "off":
                self._take_marker()
        except BaseException as exc:
            log.warning("no final marker for %s: %s", self.path, exc)
        if self.writer is None:
            return
        try:
            self.writer.abort()
        except BaseException as exc:
            log.warning("abort of %s failed: %s", self.path, exc)
