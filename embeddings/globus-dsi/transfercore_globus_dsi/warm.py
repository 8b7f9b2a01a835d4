"""Warm session processes: a session's Python started before its client connects.

The Globus daemon execs a new server process for every connection, and the
DSI starts Python and imports transfercore in each: about 0.1 s of CPU
before a session can answer, where the built-in storage needs 10 ms.  A
pool keeps a few server processes started ahead, each stopped inside the
DSI's activation (which the server runs before it looks at its connection)
with Python running and the session's modules imported.  The daemon is told
to exec ``transfercore-dsi-exec`` instead of itself; that small program
hands the connection to a waiting process over the pool's Unix socket, or,
when none takes it within ``TRANSFERCORE_DSI_WARM_WAIT_MS`` (30 ms), becomes
the server itself as the daemon would have started it.  So a session never
waits for the pool, and nothing changes for the client.

Warm processes are started exactly as the daemon would start its children
(the daemon's arguments, ``-inetd`` added, the same environment), by the
process that owns the pool; each is replaced as soon as it is taken.  Their
CPU is counted in :meth:`WarmPool.cpu_seconds`, the warm-up included, so
benchmarks report what a session really costs.
"""

from __future__ import annotations

import logging
import os
import selectors
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Sequence

import attrs

from transfercore.errors import TransferCoreError

from . import module_dir
from .launch import Launch

log = logging.getLogger("transfercore.globus_dsi")

EXEC_FILE = "transfercore-dsi-exec"
#: milliseconds a connection waits for a waiting process before it starts cold
WAIT_MS = 30
#: a process that dies before it is ready this many times in a row stops the pool
MAX_FAILURES = 3
_TICK = 0.2
#: the daemon drops these from its children's arguments (and adds -inetd)
_DAEMON_ONLY = {"s", "daemon", "S", "detach"}
#: with these the daemon never execs a connection's process (or is not a daemon in the foreground)
_REFUSED = {"i", "inetd", "S", "detach", "no-fork"}


class WarmPoolError(TransferCoreError):
    """The warm pool cannot serve this server's configuration."""


def exec_path() -> str:
    path = os.path.join(module_dir(), EXEC_FILE)
    if not os.access(path, os.X_OK):
        raise WarmPoolError(
            f"{EXEC_FILE} is missing from {module_dir()}",
            hint="reinstall transfercore-globus-dsi (its build compiles csrc/warm_exec.c), or run without --warm",
        )
    return path


def session_argv(daemon_argv: Sequence[str]) -> list[str]:
    """The arguments the daemon gives each connection's process: its own, without the
    daemon-only flags, with ``-inetd``."""
    out = [daemon_argv[0]]
    for arg in daemon_argv[1:]:
        if arg.lstrip("-") in _DAEMON_ONLY:
            continue
        out.append(arg)
    return [*out, "-inetd"]


@attrs.define
class _Proc:
    pid: int
    notify: int
    state: str = "warming"  # warming -> ready -> serving


class WarmPool:
    """``size`` warm session processes for the daemon that ``plan`` starts."""

    def __init__(self, plan: Launch, size: int, *, wait_ms: int = WAIT_MS, idle_priority: bool = True,
                 on_ready: Callable[[], None] | None = None) -> None:
        if size < 1:
            raise WarmPoolError(f"a warm pool needs at least one process, not {size}")
        flags = {a.lstrip("-") for a in plan.argv[1:] if a.startswith("-")}
        if flags & _REFUSED:
            raise WarmPoolError(
                f"warm session processes need the server as a daemon in the foreground; "
                f"{' '.join(sorted('-' + f for f in flags & _REFUSED))} given",
                hint="drop -S/-detach/-inetd/-no-fork, or run without --warm",
            )
        self.size = size
        self._exec = exec_path()
        self._dir = tempfile.mkdtemp(prefix="tc-dsi-warm-")
        self.socket_path = os.path.join(self._dir, "pool")
        env = dict(plan.env)
        env["TRANSFERCORE_DSI_SERVER"] = os.path.abspath(plan.argv[0])
        env["TRANSFERCORE_DSI_WARM_SOCKET"] = self.socket_path
        env["TRANSFERCORE_DSI_WARM_WAIT_MS"] = str(wait_ms)
        #: what starts the daemon: it execs transfercore-dsi-exec for every connection
        self.daemon = Launch((*plan.argv, "-exec", self._exec), env, plan.log, plan.imports)
        self._argv = session_argv(self.daemon.argv)
        self._env = {**env, "TRANSFERCORE_DSI_WARM_IMPORTS": " ".join(plan.imports)}
        # A process warms up at idle priority, so refilling never takes a CPU from a session, and
        # returns to normal priority to wait (a busy machine must still wake it at once), which
        # needs CAP_SYS_NICE: root's, the daemon's usual account.
        self._idle = int(idle_priority and os.geteuid() == 0)
        self._listen: socket.socket | None = None
        self._procs: dict[int, _Proc] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reaped_cpu = 0.0
        self._failures = 0
        self.error: str | None = None
        self.served = 0
        self._recycle = False
        #: called once, when all ``size`` processes first wait together
        self._on_ready = on_ready

    def start(self) -> WarmPool:
        self._listen = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listen.bind(self.socket_path)
        self._listen.listen(64)
        # Shared by every waiting process: all wake for a connection and one accepts it, so a
        # blocking accept would hold the others away from their pipe (dsi_glue.c, tc_warm_wait).
        self._listen.setblocking(False)
        self._listen.set_inheritable(True)
        self._selector = selectors.DefaultSelector()
        for _ in range(self.size):
            self._spawn()
        self._thread = threading.Thread(target=self._run, name="dsi-warm-pool", daemon=True)
        self._thread.start()
        return self

    def _spawn(self) -> None:
        assert self._listen is not None
        r, w = os.pipe()
        env = {**self._env, "TRANSFERCORE_DSI_WARM_FD": f"{self._listen.fileno()},{w},{self._idle}"}
        try:
            os.set_inheritable(w, True)
            pid = os.posix_spawn(
                self._argv[0], self._argv, env,
                file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)],
            )
        except OSError as exc:
            os.close(r)
            self.error = f"cannot start a warm session process: {exc}"
            log.error("%s", self.error)
            return
        finally:
            os.close(w)
        with self._lock:
            self._procs[pid] = _Proc(pid, r)
        self._selector.register(r, selectors.EVENT_READ, pid)

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(_TICK):
                self._notified(key.data, key.fd)
            if self._recycle:
                self._recycled()
            self._reap()

    def _notified(self, pid: int, fd: int) -> None:
        try:
            data = os.read(fd, 64)
        except OSError:
            data = b""
        proc = self._procs[pid]
        if data:
            if proc.state == "warming":
                proc.state = "ready"
                self._failures = 0
                if self._on_ready is not None and self.idle() == self.size:
                    self._on_ready()
                    self._on_ready = None
            return
        # its end closed: taken by a connection, or dead
        self._selector.unregister(fd)
        os.close(fd)
        was = proc.state
        proc.state = "serving"
        if was == "ready":
            self.served += 1
        else:
            self._failures += 1
            if self._failures >= MAX_FAILURES:
                self.error = (f"{self._failures} warm session processes in a row ended before they were ready; "
                              "connections are served cold (see the server's and the DSI's logs)")
                log.error("%s", self.error)
                return
        if not self._stop.is_set():
            self._spawn()

    def _reap(self) -> None:
        with self._lock:
            serving = [p.pid for p in self._procs.values() if p.state == "serving"]
        for pid in serving:
            self._reaped(pid)

    def _reaped(self, pid: int, *, block: bool = False) -> bool:
        """Whether ``pid`` has ended; an ended one is reaped, its CPU counted, and forgotten."""
        try:
            done, _, usage = os.wait4(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            done, usage = pid, None
        if done:
            with self._lock:
                self._procs.pop(pid, None)
                if usage is not None:
                    self._reaped_cpu += usage.ru_utime + usage.ru_stime
        return bool(done)

    def recycle(self) -> None:
        """Replace every process not yet serving, soon (within a tick of the pool's thread):
        the server's configuration changed, and a waiting process read it when it started.
        Safe from a signal handler: only a flag is set here."""
        self._recycle = True

    def _recycled(self) -> None:
        self._recycle = False
        with self._lock:
            old = [p for p in self._procs.values() if p.state != "serving"]
            for proc in old:
                proc.state = "serving"  # reaped as it ends, never counted as served or failed
        for proc in old:
            # the pool's end of its pipe closing makes it leave (dsi_glue.c, tc_warm_wait)
            self._selector.unregister(proc.notify)
            os.close(proc.notify)
        for _ in old:
            self._spawn()

    def idle(self) -> int:
        """Processes waiting for a connection now."""
        with self._lock:
            return sum(p.state == "ready" for p in self._procs.values())

    def pids(self) -> list[int]:
        """Every process of the pool still running: waiting, warming or serving a session."""
        with self._lock:
            return list(self._procs)

    def cpu_seconds(self) -> float:
        """CPU (user + system) of every process the pool started, ended or running."""
        with self._lock:
            total = self._reaped_cpu
            live = list(self._procs)
        for pid in live:
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, IndexError, ValueError):
                pass
        return total

    def stop(self, *, sessions: bool = False, timeout: float = 10.0) -> None:
        """Stop the waiting processes (and, with ``sessions``, the ones serving); remove the socket."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._listen is not None:
            self._listen.close()
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            if proc.state != "serving":
                self._selector.unregister(proc.notify)
                os.close(proc.notify)  # a waiting process leaves when its pipe's reader goes
            if proc.state != "serving" or sessions:
                try:
                    os.kill(proc.pid, 15)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for proc in procs:
            if proc.state == "serving" and not sessions:
                continue
            while not self._reaped(proc.pid):
                if time.monotonic() >= deadline:
                    try:
                        os.kill(proc.pid, 9)
                    except ProcessLookupError:
                        pass
                    self._reaped(proc.pid, block=True)
                    break
                time.sleep(0.02)
        shutil.rmtree(self._dir, ignore_errors=True)


__all__ = ["WAIT_MS", "WarmPool", "WarmPoolError", "exec_path", "session_argv"]
