"""The PIO threads kept between transfers, and the one watchdog."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import pytest
from transfercore_hpss import threads


def test_a_finished_jobs_thread_runs_the_next_job() -> None:
    seen: list[int] = []
    first = threads.start(lambda: seen.append(threading.get_ident()), "first")
    assert first.join(10) and not first.is_alive()
    deadline = time.monotonic() + 10
    while threads.idle_threads() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)  # the thread parks itself after setting the job finished
    second = threads.start(lambda: seen.append(threading.get_ident()), "second")
    assert second.join(10)
    assert seen[0] == seen[1]


def test_a_blocked_job_never_holds_up_another() -> None:
    release = threading.Event()
    blocked = [threads.start(release.wait, f"blocked {i}") for i in range(3)]
    ran = threading.Event()
    other = threads.start(ran.set, "other")
    assert other.join(10) and ran.is_set()
    assert all(job.is_alive() for job in blocked)
    release.set()
    assert all(job.join(10) for job in blocked)


def test_a_job_that_raises_is_logged_and_its_thread_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    def boom() -> None:
        raise RuntimeError("the job's own failure")

    with caplog.at_level(logging.ERROR, logger="transfercore_hpss.threads"):
        job = threads.start(boom, "failing job")
        assert job.join(10)
    assert "failing job failed" in caplog.text and "the job's own failure" in caplog.text
    after = threads.start(lambda: None, "after")
    assert after.join(10)


class _Stalled:
    def __init__(self, stalled: float) -> None:
        self.stalled = stalled
        self.calls: list[float] = []
        self.called = threading.Event()

    def stalled_for(self) -> float:
        return self.stalled

    def hung(self, stalled: float) -> None:
        self.calls.append(stalled)
        self.called.set()


def test_the_watchdog_calls_only_what_stalled_past_its_limit_and_only_once() -> None:
    stuck, moving, forgotten = _Stalled(5.0), _Stalled(0.1), _Stalled(5.0)
    threads.watchdog.watch(stuck, 0.4)
    threads.watchdog.watch(moving, 0.4)
    threads.watchdog.watch(forgotten, 0.4)
    threads.watchdog.forget(forgotten)
    assert stuck.called.wait(10)
    time.sleep(0.5)  # several more rounds of the watchdog
    assert stuck.calls == [5.0]
    assert moving.calls == [] and forgotten.calls == []
    threads.watchdog.forget(moving)


def test_a_forked_child_runs_jobs_and_watches_with_threads_of_its_own() -> None:
    # the parent has idle threads and a watchdog thread; the child inherits neither
    first = threads.start(lambda: None, "before the fork")
    assert first.join(10)
    threads.watchdog.watch(_Stalled(0.0), 10.0)
    deadline = time.monotonic() + 10
    while threads.idle_threads() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threads.idle_threads() > 0
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 only when both work
        ok = False
        try:
            ran = threading.Event()
            ok = threads.start(ran.set, "in the child").join(10) and ran.is_set()
            stuck = _Stalled(5.0)
            threads.watchdog.watch(stuck, 0.4)
            ok = ok and stuck.called.wait(10)
        finally:
            os._exit(0 if ok else 1)
    deadline = time.monotonic() + 60
    done, status = 0, 0
    while done == 0 and time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)  # polling the child, with a deadline
    if done == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung: a job or the watchdog waited for a thread it does not have")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
