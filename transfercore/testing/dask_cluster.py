"""A real Dask cluster on 127.0.0.1 for tests and benchmarks: ``dask scheduler`` and
``dask worker`` processes (no nanny, so SIGKILL of a worker is the death of
that worker), every wait bounded, every process stopped at the end.  Their
HTTP servers (which run even without a dashboard) listen on 127.0.0.1 too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from transfercore.testing.loopback import wait_port

PRELOAD = Path(__file__).with_name("dask_write_log.py")
START_TIMEOUT = 60.0


class DaskCluster:
    def __init__(self, workdir: Path, workers: int = 3, nthreads: int = 2, *, log_writes: bool = True) -> None:
        self.workdir = workdir
        self.log_writes = log_writes
        self.nworkers = workers
        self.nthreads = nthreads
        # 0 until the scheduler first listens: it picks its own port (a port from a probe could
        # be taken by another process before the scheduler binds it); restarts keep that port.
        self.port = 0
        self.write_log = workdir / "writes.log"
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self._logs: list[object] = []

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        env = dict(os.environ, TRANSFERCORE_WRITE_LOG=str(self.write_log))
        return subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=log, stderr=subprocess.STDOUT,
                                env=env, cwd=self.workdir, start_new_session=True)

    def start(self) -> DaskCluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.start_scheduler()
        for _ in range(self.nworkers):
            self.start_worker()
        self.wait_for_workers(self.nworkers)
        return self

    def start_scheduler(self) -> None:
        info = self.workdir / "scheduler.json"
        info.unlink(missing_ok=True)
        self.scheduler = self._spawn(["scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                      "--scheduler-file", str(info),
                                      "--no-dashboard", "--dashboard-address", "127.0.0.1:0"], "scheduler")
        if not self.port:
            self.port = _scheduler_port(info, self.scheduler)
        wait_port(self.port, self.scheduler, timeout=START_TIMEOUT)  # type: ignore[arg-type,unused-ignore]

    def start_worker(self) -> subprocess.Popen[bytes]:
        n = len(self.workers)
        proc = self._spawn(["worker", self.address, "--no-nanny", "--nthreads", str(self.nthreads),
                            "--host", "127.0.0.1", "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
                            "--death-timeout", "30",
                            "--local-directory", str(self.workdir / f"w{n}"),
                            *(["--preload", str(PRELOAD)] if self.log_writes else [])], f"worker{n}")
        self.workers.append(proc)
        return proc

    def wait_for_workers(self, n: int) -> None:
        from distributed import Client

        with Client(self.address, timeout=START_TIMEOUT, set_as_default=False) as client:
            client.wait_for_workers(n, timeout=START_TIMEOUT)

    def live_workers(self) -> list[subprocess.Popen[bytes]]:
        return [w for w in self.workers if w.poll() is None]

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self) -> None:
        procs = [p for p in [*self.workers, self.scheduler] if p is not None and p.poll() is None]
        for p in procs:
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 1.5
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        self.workers = []
        self.scheduler = None
        for log in self._logs:
            log.close()  # type: ignore[attr-defined]
        self._logs = []

    def logs(self) -> str:
        out = []
        for path in sorted(self.workdir.glob("*.log")):
            if path.name != self.write_log.name:
                out.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(out)


def _scheduler_port(info: Path, proc: subprocess.Popen[bytes]) -> int:
    """The port in the ``--scheduler-file`` the scheduler writes once it listens."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the Dask scheduler exited with {proc.returncode} before it listened")
        try:
            address = str(json.loads(info.read_text())["address"])
        except (FileNotFoundError, ValueError, KeyError):  # not there yet, or half written
            time.sleep(0.05)
            continue
        return int(address.rsplit(":", 1)[1])
    raise RuntimeError(f"the Dask scheduler wrote no address to {info} within {START_TIMEOUT:.0f} s")


def writes(log: Path) -> dict[str, list[tuple[int, int, int]]]:
    """Per destination path, the (pid, offset, length) of every write logged."""
    out: dict[str, list[tuple[int, int, int]]] = {}
    if not log.exists():
        return out
    for line in log.read_text().splitlines():
        pid, offset, length, path = line.split(" ", 3)
        out.setdefault(path, []).append((int(pid), int(offset), int(length)))
    return out
