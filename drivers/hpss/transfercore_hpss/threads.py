"""Threads for PIO, kept between transfers, and one watchdog for every PIO transfer.

Each PIO transfer needs a thread blocked in ``hpss_PIORegister`` and, for a
write, one that executes its segments.  Starting a thread costs about 80 us
of CPU and a hand-off to the new thread before ``start()`` returns; a server
storing many small files paid that two or three times a file.  Here a
finished job's thread waits a while for the next one instead of ending.  A
job never waits for a free thread: one is started when none is idle, so a
transfer blocked in PIO can never hold up another.

The watchdog, likewise, is one thread for the process, not one a transfer.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

#: Seconds an idle thread waits for another job before it ends.
IDLE_SECONDS = 30.0
#: Idle threads kept at most (more end as soon as their job does).
MAX_IDLE = 16


def _done() -> None:
    return None


class Job:
    """A job handed to a thread: what a caller waits on instead of ``Thread.join``."""

    def __init__(self, target: Callable[[], object], name: str) -> None:
        self.target = target
        self.name = name
        self._finished = threading.Event()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the job returned (or raised); True when it has."""
        return self._finished.wait(timeout)

    def is_alive(self) -> bool:
        return not self._finished.is_set()


class _Idle:
    """An idle thread's mailbox: its next job."""

    def __init__(self) -> None:
        self.inbox: queue.SimpleQueue[Job] = queue.SimpleQueue()


_lock = threading.Lock()
_idle: list[_Idle] = []


def start(target: Callable[[], object], name: str) -> Job:
    """Run ``target`` in an idle thread, or in a new one when none is idle."""
    job = Job(target, name)
    with _lock:
        slot = _idle.pop() if _idle else None
    if slot is None:
        threading.Thread(target=_serve, args=(job,), name=name, daemon=True).start()
    else:
        slot.inbox.put(job)
    return job


def _serve(job: Job) -> None:
    me = threading.current_thread()
    slot = _Idle()
    while True:
        me.name = job.name  # what a profiler or a thread dump shows
        try:
            job.target()
        except BaseException:
            log.exception("%s failed", job.name)
        finally:
            # what the target holds (a PIO session and its buffers) is freed now, not when
            # this thread takes its next job or the garbage collector finds the cycle
            job.target = _done
            job._finished.set()
            del job
        me.name = "hpss-idle"
        with _lock:
            if len(_idle) >= MAX_IDLE:
                return
            _idle.append(slot)
        try:
            job = slot.inbox.get(timeout=IDLE_SECONDS)
        except queue.Empty:
            with _lock:
                if slot in _idle:
                    _idle.remove(slot)
                    return
            job = slot.inbox.get()  # handed a job just as the wait ended


def idle_threads() -> int:
    with _lock:
        return len(_idle)


class Watched(Protocol):
    def stalled_for(self) -> float:
        """Seconds a PIO call has been in flight without progress (0 when none)."""

    def hung(self, stalled: float) -> None:
        """Called once, from the watchdog's thread, when the stall passed the limit."""


class _Watchdog:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._watched: dict[Watched, float] = {}
        self._thread: threading.Thread | None = None

    def watch(self, what: Watched, limit: float) -> None:
        with self._cond:
            self._watched[what] = limit
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="hpss-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()

    def forget(self, what: Watched) -> None:
        with self._cond:
            self._watched.pop(what, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._watched:
                    self._cond.wait()
                # as often as the tightest limit asks (a quarter of it), at most once a second
                period = min(1.0, min(self._watched.values()) / 4)
                self._cond.wait(period)
                due = [(w, s) for w, limit in self._watched.items() if (s := w.stalled_for()) > limit]
                for what, _ in due:
                    del self._watched[what]
            for what, stalled in due:
                # hung() ends the PIO groups, which must not keep the others unwatched
                start(functools.partial(what.hung, stalled), "hpss-watchdog-end")


watchdog = _Watchdog()


def _after_fork_in_child() -> None:
    # A forked child has only the thread that forked: the idle threads and the watchdog
    # named here do not exist in it (a job handed to one would never run).
    global _lock, _idle, watchdog
    _lock = threading.Lock()
    _idle = []
    watchdog = _Watchdog()


os.register_at_fork(after_in_child=_after_fork_in_child)

