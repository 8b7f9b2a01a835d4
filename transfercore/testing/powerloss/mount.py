"""Mounting, crashing and unmounting a power-loss volume from a test.

The file system runs in a child process.  :meth:`PowerLossFS.crash` kills that
process with ``SIGKILL``: every byte it held in memory is gone, processes with
files open on the mount get ``ENOTCONN``, and only the backing directory is
left, as after a power cut.  Mounting again rebuilds the tree from it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from types import TracebackType
from typing import IO

from transfercore.errors import TransferCoreError

_MODULE = "transfercore.testing.powerloss"


class FuseUnavailable(TransferCoreError):
    """FUSE cannot be used on this machine."""


class PowerLossError(TransferCoreError):
    """The power-loss file system failed to mount, crash or unmount."""


def check_fuse() -> None:
    """Raise :class:`FuseUnavailable`, saying what to install, unless FUSE works here."""
    problems = []
    if not os.path.exists("/dev/fuse"):
        problems.append("/dev/fuse does not exist (load the fuse module or run the container with --device /dev/fuse)")
    elif not os.access("/dev/fuse", os.R_OK | os.W_OK):
        problems.append("/dev/fuse is not readable and writable by this user")
    if shutil.which("fusermount3") is None:
        problems.append("fusermount3 is missing (apt-get install fuse3)")
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as exc:
        problems.append(f"the mfusepy binding cannot load libfuse3 ({exc}); apt-get install libfuse3-3 and pip install mfusepy")
    if problems:
        raise FuseUnavailable(
            "the power-loss file system needs FUSE: " + "; ".join(problems),
            hint="install FUSE 3 and mfusepy, and run as root or with access to /dev/fuse",
        )


def is_mounted(mountpoint: str | os.PathLike[str]) -> bool:
    """Read the mount table instead of stat()ing the path, which hangs on a dead mount."""
    target = os.path.realpath(mountpoint)
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == target:
                return True
    return False


class PowerLossFS:
    """A mounted power-loss volume whose durable state lives in ``backing``.

    Use as a context manager; ``with PowerLossFS(backing, mnt) as fs: ... fs.crash()``.
    """

    def __init__(
        self,
        backing: str | os.PathLike[str],
        mountpoint: str | os.PathLike[str],
        *,
        host_fsync: bool = True,
        allow_other: bool = True,
        timeout: float = 15.0,
    ) -> None:
        self.backing = os.path.realpath(backing)
        self.mountpoint = os.path.realpath(mountpoint)
        self._host_fsync = host_fsync
        self._allow_other = allow_other
        self._timeout = timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        #: How many times :meth:`crash` ran.
        self.crashes = 0

    @property
    def mounted(self) -> bool:
        return self._proc is not None

    def mount(self) -> None:
        if self._proc is not None:
            raise PowerLossError(f"{self.mountpoint} is already mounted by this object")
        check_fuse()
        if is_mounted(self.mountpoint):
            raise PowerLossError(
                f"something is already mounted on {self.mountpoint}",
                hint=f"unmount it first: fusermount3 -u -z {self.mountpoint}",
            )
        os.makedirs(self.backing, exist_ok=True)
        os.makedirs(self.mountpoint, exist_ok=True)
        cmd = [sys.executable, "-m", _MODULE, "serve", self.backing, self.mountpoint]
        if not self._host_fsync:
            cmd.append("--no-host-fsync")
        if not self._allow_other:
            cmd.append("--no-allow-other")
        self._log = tempfile.TemporaryFile()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        self._proc = proc
        deadline = time.monotonic() + self._timeout
        while not is_mounted(self.mountpoint):
            if proc.poll() is not None:
                self._proc = None
                raise PowerLossError(
                    f"the power-loss file system exited with status {proc.returncode} before mounting "
                    f"{self.mountpoint}: {self._log_text()}"
                )
            if time.monotonic() > deadline:
                self._kill()
                raise PowerLossError(f"the power-loss file system did not mount {self.mountpoint} in {self._timeout} s")
            time.sleep(0.01)

    def freeze(self) -> None:
        """Stop the daemon where it stands (SIGSTOP): from here on nothing more becomes
        durable and every request on the mount waits.  :meth:`crash` must follow."""
        if self._proc is None:
            raise PowerLossError("freeze() needs a mounted file system")
        self._proc.send_signal(signal.SIGSTOP)

    def crash(self, *, remount: bool = True) -> None:
        """Power cut: drop everything not yet durable, then (by default) mount again."""
        if self._proc is None:
            raise PowerLossError("crash() needs a mounted file system")
        self._kill()
        self.crashes += 1
        if remount:
            self.mount()

    def unmount(self) -> None:
        """Clean unmount: like a real file system, everything written becomes durable."""
        if self._proc is None:
            return
        result = subprocess.run(["fusermount3", "-u", self.mountpoint], capture_output=True, text=True)
        if result.returncode != 0:
            raise PowerLossError(
                f"cannot unmount {self.mountpoint}: {result.stderr.strip()}",
                hint="close the files open on it, or crash() it instead",
            )
        try:
            self._proc.wait(self._timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            raise PowerLossError("the power-loss file system did not exit after unmount") from None
        status = self._proc.returncode
        self._proc = None
        if status != 0:
            raise PowerLossError(f"the power-loss file system exited with status {status}: {self._log_text()}")

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        # Lazy unmount: processes still holding files there must not block it.
        deadline = time.monotonic() + self._timeout
        while is_mounted(self.mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", self.mountpoint], capture_output=True)
            if time.monotonic() > deadline:
                raise PowerLossError(f"cannot unmount {self.mountpoint} after the crash")
            time.sleep(0.01)

    def _log_text(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    def __enter__(self) -> PowerLossFS:
        self.mount()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc is None:
            return
        if exc_type is None:
            self.unmount()
        else:
            self._kill()
