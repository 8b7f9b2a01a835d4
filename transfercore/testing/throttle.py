"""Slowing a process down from outside: it runs ``duty`` of each period (SIGCONT/SIGSTOP).

Power-loss and restart trials use it so that an upload over loopback lasts
several of a server's marker periods while the client still sends a regular
file whose size it announces.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import IO


def small_pipe(stream: IO[str] | None) -> None:
    """Shrink the pipe behind ``stream`` (a child's stdout) to one page.

    A child writing events into a 64 KiB pipe can run hundreds of events ahead of
    a test that is slow to read them (a loaded machine); with one page it blocks
    a few events ahead, so a kill point read from its events is still ahead of it.
    """
    import fcntl

    assert stream is not None, "the child's output is not a pipe"
    fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, 4096)


class Throttle:
    """Runs process ``pid`` ``duty`` of every ``period`` seconds until :meth:`close`, which lets it run on."""

    def __init__(self, pid: int, duty: float, period: float = 0.1) -> None:
        if not 0 < duty <= 1:
            raise ValueError(f"duty {duty} must be in (0, 1]")
        self.pid, self.duty, self.period = pid, duty, period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"throttle {pid}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                os.kill(self.pid, signal.SIGCONT)
                if self._stop.wait(self.period * self.duty):
                    break
                os.kill(self.pid, signal.SIGSTOP)
                time.sleep(self.period * (1 - self.duty))
            os.kill(self.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def freeze(pid: int, timeout: float = 10.0) -> None:
    """Stop process group ``pid`` (SIGSTOP) and return once every thread of ``pid`` is stopped.

    What a test then sees on disk stays as it is until :func:`thaw` or a kill,
    so a kill decided on what was seen lands on exactly that state.
    """
    os.killpg(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = []
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/stat") as f:
                    states.append(f.read().rsplit(")", 1)[1].split()[0])
            except FileNotFoundError:
                continue  # a thread that ended meanwhile
        if all(state in "tTXZ" for state in states):
            return
        time.sleep(0.005)
    raise TimeoutError(f"process {pid} did not stop within {timeout} s")


def thaw(pid: int) -> None:
    """Let process group ``pid`` run on after :func:`freeze`."""
    os.killpg(pid, signal.SIGCONT)
