"""One run per destination at a time: a lock file held for the whole run.

Two runs writing one destination would resume each other's in-flight partial
object and fight over its publish.  Each run holds an exclusive ``flock`` on a
file named after the destination; the kernel lets go of it when the process
ends, however it ends, so a lock is never stale and ``status`` can tell a run
that died from one that is still going.  The file holds who took it (process
id, start time, source) so that a refused run can name the other one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from .errors import TransferCoreError

_STARTED: float | None = None


def process_started() -> float:
    """When this process started (seconds since the epoch), from /proc where there is one."""
    global _STARTED
    if _STARTED is None:
        try:
            with open(f"/proc/{os.getpid()}/stat") as f:
                ticks = int(f.read().rsplit(")", 1)[1].split()[19])
            with open("/proc/stat") as f:
                boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
            _STARTED = boot + ticks / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError, StopIteration):
            _STARTED = time.time()
    return _STARTED


class Busy(TransferCoreError):
    """Another run holds the destination."""


def lock_name(destination: str) -> str:
    return hashlib.sha256(destination.encode()).hexdigest()[:32] + ".lock"


def _describe(info: dict[str, Any] | None) -> str:
    if not info:
        return "another process"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started", 0)))
    return f"process {info.get('pid', '?')} (started {started}, copying from {info.get('source', '?')})"


def _read(fd: int) -> dict[str, Any] | None:
    try:
        data = os.pread(fd, 65536, 0)
        value = json.loads(data.decode()) if data else None
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class RunLock:
    """A held lock; :meth:`release` (or leaving the ``with`` block) lets it go."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, path: Path, *, source: str, destination: str) -> RunLock:
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise TransferCoreError(
                f"cannot create the run lock {path}: {exc.strerror or exc}",
                hint="check that the journal's directory is writable, or give another journal with --journal",
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            info = _read(fd)
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise Busy(
                    f"{destination} is being written by another transfercore run: {_describe(info)}",
                    hint="wait for that run to finish (or stop it), then start this one again",
                ) from None
            raise TransferCoreError(f"cannot lock {path}: {exc.strerror or exc}") from exc
        record = {"pid": os.getpid(), "started": process_started(), "source": source, "destination": destination}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(path: Path) -> dict[str, Any] | None:
    """Who holds the lock at ``path`` right now, or None when nobody does."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _read(fd) or {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
