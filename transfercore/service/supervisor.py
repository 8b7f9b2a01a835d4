"""Several worker processes behind one listening socket (``serve --workers N``).

One Python process runs its sessions on one core at a time; a server of
many small files spends its time in per-file work that the interpreter lock
serialises.  The supervisor binds the socket once and starts ``N`` copies
of the same command, each told by :data:`ENV` which worker it is and which
inherited descriptors hold the listening socket, the state the workers
share and the pipe on which to say it is ready.  Every worker accepts from
the one socket, so an idle worker takes the next connection.

The supervisor itself runs no session: it waits for signals and for its
workers.  ``SIGHUP`` is passed on (each worker reloads its settings),
``SIGTERM`` and ``SIGINT`` stop every worker, and a worker that dies is
replaced, after its shared records are cleared, unless workers keep dying
at start, when the supervisor stops.  A worker stops by itself when its
supervisor is gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

import attrs

#: The environment variable that makes a command a worker of a supervisor.
ENV = "TRANSFERCORE_WORKER"
#: How long a worker may take to start listening.
START_TIMEOUT = 120.0
#: How long the workers may take to stop before they are killed.
STOP_TIMEOUT = 30.0
#: Workers that die within this many seconds of their start count as failing to start ...
QUICK_DEATH = 2.0
#: ... and this many in a row stop the supervisor.
MAX_QUICK_DEATHS = 5

log = logging.getLogger("transfercore.service")


@attrs.frozen
class WorkerSpec:
    """What a worker is told: who it is and its inherited descriptors."""

    index: int
    count: int
    listen_fd: int
    shared_fd: int
    ready_fd: int
    supervisor: int
    #: how many workers had this index before (their session numbers are not reused)
    generation: int = 0

    def encode(self) -> str:
        return ",".join(str(v) for v in attrs.astuple(self))

    @classmethod
    def decode(cls, text: str) -> WorkerSpec:
        try:
            return cls(*(int(v) for v in text.split(",")))
        except (TypeError, ValueError):
            raise ValueError(f"{ENV}={text!r} is not a worker specification") from None


def worker_spec() -> WorkerSpec | None:
    """This process's worker specification (taken out of the environment: children do not inherit it)."""
    text = os.environ.pop(ENV, None)
    return WorkerSpec.decode(text) if text else None


def say_ready(spec: WorkerSpec) -> None:
    """Tell the supervisor this worker accepts connections."""
    with contextlib.suppress(OSError):
        os.write(spec.ready_fd, b"1")
    with contextlib.suppress(OSError):
        os.close(spec.ready_fd)


def supervisor_gone(spec: WorkerSpec) -> bool:
    return os.getppid() != spec.supervisor


@attrs.define
class _Child:
    index: int
    process: subprocess.Popen[bytes]
    started: float
    ready: int | None  # the read end of its ready pipe until it said so


class Supervisor:
    """Runs ``count`` workers of ``argv`` (``python -m transfercore`` + ``argv``) on ``listening``."""

    def __init__(
        self,
        argv: Sequence[str],
        count: int,
        listening: socket.socket,
        shared_fd: int,
        forget: Callable[[int], None],
    ) -> None:
        self.argv = list(argv)
        self.count = count
        self.listening = listening
        self.shared_fd = shared_fd
        #: clears what a dead worker held in the shared state
        self.forget = forget
        self.children: dict[int, _Child] = {}
        self.generations: dict[int, int] = {}
        self._signals: list[int] = []

    def _spawn(self, index: int) -> _Child:
        read, write = os.pipe()
        generation = self.generations.get(index, -1) + 1
        self.generations[index] = generation
        spec = WorkerSpec(index, self.count, self.listening.fileno(), self.shared_fd, write, os.getpid(), generation)
        env = dict(os.environ, **{ENV: spec.encode()})
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "transfercore", *self.argv],
                env=env, pass_fds=(spec.listen_fd, spec.shared_fd, write),
            )
        finally:
            os.close(write)
        return _Child(index, process, time.monotonic(), read)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals.append(signum)

    def run(self, announce: Callable[[], None]) -> int:
        """Start the workers, ``announce`` once all listen, and supervise them until stopped."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(wake_r, False)
        old_wakeup = signal.set_wakeup_fd(wake_w)
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)
        old = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        try:
            for index in range(self.count):
                self.children[index] = self._spawn(index)
            code = self._wait_ready(wake_r)
            if code is not None:
                return code
            announce()
            return self._supervise(wake_r)
        finally:
            self._stop_all()
            for sig, handler in old.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(old_wakeup)
            os.close(wake_r)
            os.close(wake_w)

    def _wait(self, wake_r: int, timeout: float) -> list[tuple[_Child, bool]]:
        """Wait for a signal or a starting worker's word; the workers heard from, and whether each is ready."""
        starting = {c.ready: c for c in self.children.values() if c.ready is not None}
        readable, _, _ = select.select([wake_r, *starting], [], [], timeout)
        heard = []
        for fd in readable:
            if fd == wake_r:
                _drain(wake_r)
                continue
            child = starting[fd]
            said = bool(os.read(fd, 1))
            os.close(fd)
            child.ready = None
            heard.append((child, said))
        return heard

    def _wait_ready(self, wake_r: int) -> int | None:
        deadline = time.monotonic() + START_TIMEOUT
        while any(c.ready is not None for c in self.children.values()):
            if time.monotonic() > deadline:
                print("transfercore serve: a worker did not start listening in time", file=sys.stderr)
                return 1
            for child, said in self._wait(wake_r, 0.5):
                if not said:  # it closed the pipe without a word: it failed to start
                    return _exit_code(child.process.wait())
            if any(s in (signal.SIGTERM, signal.SIGINT) for s in self._signals):
                return 0
            for child in self.children.values():
                status = child.process.poll()
                if status is not None and child.ready is not None:
                    return _exit_code(status)
        return None

    def _supervise(self, wake_r: int) -> int:
        quick_deaths = 0
        while True:
            for child, said in self._wait(wake_r, 1.0):
                if said:
                    print(f"transfercore serve: worker {child.index} (pid {child.process.pid}) accepts "
                          "connections again", file=sys.stderr, flush=True)
            signals, self._signals = self._signals, []
            if any(s in (signal.SIGTERM, signal.SIGINT) for s in signals):
                return 0
            if signal.SIGHUP in signals:
                for child in self.children.values():
                    with contextlib.suppress(ProcessLookupError):
                        child.process.send_signal(signal.SIGHUP)
            for index, child in list(self.children.items()):
                status = child.process.poll()
                if status is None:
                    continue
                lived = time.monotonic() - child.started
                quick_deaths = quick_deaths + 1 if lived < QUICK_DEATH else 0
                if quick_deaths >= MAX_QUICK_DEATHS:
                    print(f"transfercore serve: workers keep dying at start (the last: {_describe(status)}); "
                          "stopping", file=sys.stderr)
                    return 1
                print(f"transfercore serve: worker {index} (pid {child.process.pid}) {_describe(status)}; "
                      "starting another", file=sys.stderr, flush=True)
                self.forget(index)
                if child.ready is not None:
                    os.close(child.ready)
                # not waited for: the socket queues connections until it accepts
                self.children[index] = self._spawn(index)

    def _stop_all(self) -> None:
        for child in self.children.values():
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in self.children.values():
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
            if child.ready is not None:
                os.close(child.ready)
                child.ready = None


def _drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError, OSError):
        os.read(fd, 4096)


def _exit_code(status: int) -> int:
    return status if status > 0 else 1


def _describe(status: int) -> str:
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = str(-status)
        return f"was killed by {name}"
    return f"exited with code {status}"


__all__ = ["ENV", "Supervisor", "WorkerSpec", "say_ready", "supervisor_gone", "worker_spec"]
