"""The control thread's loop while the streams move the bytes.

It wakes on the marker policy's schedule, on the streams' byte counts
(:attr:`.pump.Pump.wake_at`) and for progress events; it takes markers,
watches the source at each, reports progress, and stops the copy early on
a cancel, a stream's error or the read-back's.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

from ..errors import RESUME_HINT, TransferAborted
from ..ranges import RangeSet
from .events import Event, Progress
from .marking import Markers
from .policy import MarkerPolicy
from .pump import Pump
from .sourcewatch import SourceWatch
from .verification import Verification

#: Seconds of history behind the rate shown in progress events.
RATE_WINDOW = 5.0


class ByteLoop:
    """Drives ``pump`` to the end for an object of ``size`` bytes that resumed ``resumed``."""

    def __init__(
        self,
        pump: Pump,
        markers: Markers,
        verification: Verification,
        watch: SourceWatch,
        *,
        size: int,
        resumed: RangeSet,
        started: float,
        progress_interval: float,
        emit: Callable[[Event], None],
        cancel: threading.Event,
        wake: threading.Event,
    ) -> None:
        self._pump = pump
        self._markers = markers
        self._verification = verification
        self._watch = watch
        self._size = size
        self._resumed = resumed
        self._started = started
        self._interval = progress_interval
        self._emit = emit
        self._cancel = cancel
        self._wake = wake

    def run(self, policy: MarkerPolicy) -> None:
        pump = self._pump
        wake = self._wake
        interval = self._interval
        cursor = self._markers.cursor
        cursor.policy = policy
        cursor.mark_taken(time.monotonic(), 0)
        last_marker_bytes = 0
        # policy.bytes bounds the bytes not yet under a recorded marker: a
        # marker is taken when half of it is unmarked, while the streams go on
        # writing the other half (the flush overlaps the writes), and streams
        # wait only when all of it is unmarked.  A crash therefore never loses
        # more than policy.bytes plus the blocks in flight.
        step = None if policy.bytes is None else max(1, policy.bytes // 2)
        pump.wake_at = step
        pump.hold(policy.bytes)
        samples: collections.deque[tuple[float, int]] = collections.deque()
        next_progress = time.monotonic() + interval
        pump.start()
        while not pump.finished:
            now = time.monotonic()
            timeout = next_progress - now
            until_marker = cursor.seconds_until_due(now)
            if until_marker is not None:
                timeout = min(timeout, until_marker + 0.001)
            wake.wait(max(0.0, timeout))
            wake.clear()
            if self._cancel.is_set():
                raise TransferAborted("the transfer was cancelled", hint=RESUME_HINT)
            if pump.error is not None:
                break
            if self._verification.error is not None:
                pump.stop()
                break
            now = time.monotonic()
            sent = pump.bytes_sent
            due_by_bytes = step is not None and sent - last_marker_bytes >= step
            if due_by_bytes or cursor.due(now, sent):
                self._markers.take()
                self._watch.watch()
                cursor.mark_taken(time.monotonic(), sent)
                last_marker_bytes = sent
                if step is not None and policy.bytes is not None:
                    pump.wake_at = sent + step
                    pump.hold(sent + policy.bytes)
            if now >= next_progress:
                self._progress(samples, now)
                next_progress = now + interval
        pump.join()
        if pump.error is not None:
            raise pump.error
        error = self._verification.error
        if error is not None:
            raise error
        if self._cancel.is_set():
            raise TransferAborted("the transfer was cancelled", hint=RESUME_HINT)
        self._progress(samples, time.monotonic())

    def _progress(self, samples: collections.deque[tuple[float, int]], now: float) -> None:
        sent = self._pump.bytes_sent
        samples.append((now, sent))
        while len(samples) > 2 and now - samples[0][0] > RATE_WINDOW:
            samples.popleft()
        t0, b0 = samples[0]
        elapsed = now - self._started
        rate = (sent - b0) / (now - t0) if now > t0 else (sent / elapsed if elapsed > 0 else 0.0)
        done = self._resumed.total() + sent
        eta = (self._size - done) / rate if rate > 0 else None
        self._emit(Progress(sent, done, self._size, self._markers.marker.total(), elapsed, rate, eta))
