"""Power cuts under a real file system: ext4, xfs or btrfs on a loop device over the power-loss volume.

The FUSE power-loss volume sees only the calls a program makes on it, so it
cannot judge what a kernel file system does with them (``syncfs``, journal
commits, delayed allocation).  Here the real file system runs on top of it::

    workload -> ext4/xfs/btrfs -> /dev/loopN -> disk.img on the power-loss volume (FUSE)

The loop driver turns every cache flush the file system issues (a journal
commit, an ``fsync``) into an ``fsync`` of the image file, and a FUSE
``fsync`` is exactly what the volume keeps.  So the volume holds what a disk
would have been told to keep, and no more.

A cut (:meth:`RealFS.cut`) freezes the volume, kills the workload, kills the
volume's daemon (the power goes), takes the image as the volume kept it, and mounts a copy of it
on the same mount point: the real file system replays its journal, as after a
reboot, and the test checks what is there.  Everything the harness started
(mounts, loop devices, the FUSE daemon) it ends by itself, by name, in
:meth:`RealFS.close`.  It needs root and loop devices; without them it raises
:class:`LoopUnavailable`, saying what is missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from transfercore.errors import TransferCoreError

from .model import Volume
from .mount import PowerLossFS, is_mounted

MiB = 1024 * 1024
FILESYSTEMS = ("ext4", "xfs", "btrfs")
IMAGE = "disk.img"
#: Image sizes that keep a cut fast (the volume holds the image in memory, and a
#: cut copies it); btrfs needs about 110 MiB outside its "mixed" small-disk mode.
DEFAULT_SIZE = {"ext4": 64 * MiB, "xfs": 64 * MiB, "btrfs": 128 * MiB}
_TIMEOUT = 60.0

#: mkfs.xfs refuses file systems under 300 MB unless it believes it runs under
#: the kernel's own test suite (fstests); a small image keeps cuts fast.
_SMALL_XFS_ENV = {"TEST_DIR": "1", "TEST_DEV": "1", "QA_CHECK_FS": "1"}


class LoopUnavailable(TransferCoreError):
    """Loop devices, mount or the file system's tools cannot be used here."""


class RealFSError(TransferCoreError):
    """A step of the real-file-system harness failed."""


def _run(cmd: list[str], what: str, *, env: dict[str, str] | None = None, timeout: float = _TIMEOUT) -> str:
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RealFSError(f"{what}: {' '.join(cmd)} did not finish in {timeout} s") from None
    if result.returncode != 0:
        raise RealFSError(f"{what}: {' '.join(cmd)} exited with {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def check_loop(fstype: str = "ext4") -> None:
    """Raise :class:`LoopUnavailable`, saying what is missing, unless a ``fstype``
    image can be attached to a loop device and mounted here."""
    if fstype not in FILESYSTEMS:
        raise LoopUnavailable(f"no harness for file system {fstype!r}; it knows {', '.join(FILESYSTEMS)}")
    problems = []
    if os.geteuid() != 0:
        problems.append("it runs as root only (losetup and mount need CAP_SYS_ADMIN)")
    if not os.path.exists("/dev/loop-control"):
        problems.append("/dev/loop-control does not exist (modprobe loop, or run the container with loop devices)")
    tools = {"losetup": "mount", "mount": "mount", "umount": "mount", f"mkfs.{fstype}": _PACKAGE[fstype]}
    for tool, package in tools.items():
        if shutil.which(tool) is None:
            problems.append(f"{tool} is missing (apt-get install {package})")
    if not problems:
        try:
            with open("/proc/filesystems", encoding="ascii") as fh:
                known = {line.split()[-1] for line in fh if line.strip()}
        except OSError as exc:
            known = set()
            problems.append(f"cannot read /proc/filesystems: {exc}")
        if known and fstype not in known:
            # The module may still load on first mount; try it, as mount would.
            subprocess.run(["modprobe", fstype], capture_output=True)
            with open("/proc/filesystems", encoding="ascii") as fh:
                if fstype not in {line.split()[-1] for line in fh if line.strip()}:
                    problems.append(f"the kernel does not know {fstype} (modprobe {fstype} failed)")
    if not problems:
        probe = subprocess.run(["losetup", "-f"], capture_output=True, text=True)
        if probe.returncode != 0:
            problems.append(f"losetup -f finds no free loop device: {probe.stderr.strip()}")
    if problems:
        raise LoopUnavailable(
            f"the real-file-system power-loss harness ({fstype}) cannot run: " + "; ".join(problems),
            hint="run as root on a machine with loop devices, with the packages of .ci/debian-packages.txt",
        )


_PACKAGE = {"ext4": "e2fsprogs", "xfs": "xfsprogs", "btrfs": "btrfs-progs"}


def make_filesystem(image: str | os.PathLike[str], fstype: str, size: int) -> None:
    """Create ``image`` of ``size`` bytes holding an empty ``fstype``, and make it durable."""
    path = os.fspath(image)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)
    if fstype == "ext4":
        # Lazy initialisation would keep writing the inode tables and the journal
        # from a kernel thread after the mount, noise in every cut.
        _run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", path], "mkfs.ext4")
    elif fstype == "xfs":
        _run(["mkfs.xfs", "-q", "-f", path], "mkfs.xfs", env={**os.environ, **_SMALL_XFS_ENV})
    elif fstype == "btrfs":
        _run(["mkfs.btrfs", "-q", "-f", "--nodiscard", path], "mkfs.btrfs")
    else:
        raise RealFSError(f"no harness for file system {fstype!r}")
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    parent = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(parent)
    finally:
        os.close(parent)


class RealFS:
    """A real ``fstype`` file system mounted at ``workdir/fs``, on a loop device over
    an image file on a power-loss volume; power can be cut with :meth:`cut`.

    ``with RealFS(tmp_path, "ext4") as fs: ...write under fs.mountpoint...; fs.cut([proc])``.
    After a cut, the survivor is mounted at the same :attr:`mountpoint`, so paths a
    journal recorded still name the same files.  By default the survivor sits on a
    plain file; ``cut(powerloss=True)`` puts it back on a fresh power-loss volume,
    ready for the next cut.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        fstype: str = "ext4",
        *,
        size: int | None = None,
        direct_io: bool = True,
        mount_options: Iterable[str] = (),
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.fstype = fstype
        self.size = DEFAULT_SIZE.get(fstype, 128 * MiB) if size is None else size
        #: O_DIRECT from the loop device to the image: no second page cache between
        #: the file system and the volume, whose view is then exactly the disk's.
        self.direct_io = direct_io
        self.mount_options = tuple(mount_options)
        self.mountpoint = self.workdir / "fs"
        #: How many cuts so far.
        self.cuts = 0
        self._plfs: PowerLossFS | None = None
        self._backing: Path | None = None
        self._device: str | None = None
        self._mounted = False
        self._images: list[Path] = []

    # --- the stack ---------------------------------------------------------------------

    @property
    def on_powerloss(self) -> bool:
        """Whether the mounted file system sits on a power-loss volume (a cut is possible)."""
        return self._plfs is not None and self._plfs.mounted

    @property
    def device(self) -> str | None:
        return self._device

    def open(self) -> None:
        """Make an empty file system on a fresh power-loss volume and mount it."""
        check_loop(self.fstype)
        if self._mounted:
            raise RealFSError(f"{self.mountpoint} is already mounted by this harness")
        if is_mounted(self.mountpoint):
            raise RealFSError(f"something is already mounted on {self.mountpoint}", hint=f"umount {self.mountpoint}")
        try:
            # mkfs on the host, then the image seeded into the volume's durable
            # state: mkfs's scattered writes through FUSE would cost seconds.
            self.workdir.mkdir(parents=True, exist_ok=True)
            fresh = self.workdir / "mkfs.img"
            with contextlib.suppress(FileNotFoundError):
                fresh.unlink()
            make_filesystem(fresh, self.fstype, self.size)
            image = self._start_volume(fresh)
            fresh.unlink()
            self._attach_and_mount(image, direct_io=self.direct_io)
        except BaseException:
            self.close()
            raise

    def _start_volume(self, image: Path) -> Path:
        """A fresh power-loss volume holding a durable copy of ``image``; its path there."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._backing = self.workdir / f"backing-{self.cuts}"
        fuse = self.workdir / "volume"
        if self._backing.exists():
            shutil.rmtree(self._backing)
        Volume.seed(self._backing, IMAGE, image)
        # host_fsync off: a cut kills the daemon, it never cuts the host's power.
        self._plfs = PowerLossFS(self._backing, fuse, host_fsync=False)
        self._plfs.mount()
        return fuse / IMAGE

    def _attach_and_mount(self, image: Path, *, direct_io: bool) -> None:
        cmd = ["losetup", "--find", "--show", f"--direct-io={'on' if direct_io else 'off'}", str(image)]
        self._device = _run(cmd, f"cannot attach {image} to a loop device").strip()
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        options = list(self.mount_options)
        if self.fstype == "xfs" and self.cuts:
            # A survivor carries the dead file system's UUID; xfs refuses a second
            # mount of one UUID while the first is still known to the kernel.
            options.append("nouuid")
        cmd = ["mount", "-t", self.fstype, *(["-o", ",".join(options)] if options else []), self._device]
        _run([*cmd, str(self.mountpoint)], f"cannot mount {self._device} on {self.mountpoint}")
        self._mounted = True

    # --- the cut ------------------------------------------------------------------------

    def cut(self, workload: Iterable[subprocess.Popen[str] | subprocess.Popen[bytes] | int] = (),
            *, powerloss: bool = False) -> Path:
        """Cut the power: what was not flushed to the image is gone.

        Freezes the volume, kills the ``workload`` (processes or PIDs, each its
        whole process group when it leads one) with SIGKILL, kills the volume's
        daemon (that is the cut), waits for the workload to be gone, unmounts
        what is left of the dead file system, and mounts the
        surviving image at :attr:`mountpoint`; the file system replays its
        journal there.  Returns the survivor image (a plain file under ``workdir``).
        With ``powerloss=True`` the survivor goes on a fresh power-loss volume,
        so that the next cut can follow.
        """
        if not self.on_powerloss or self._backing is None:
            raise RealFSError("cut() needs a file system mounted on a power-loss volume")
        assert self._plfs is not None
        # At a real cut the disk and the programs stop at the same instant.  Here:
        # the disk freezes first (no flush completes from now on, so none can
        # answer a durability call), then the workload gets SIGKILL (it never
        # runs another instruction of its own, so it reports nothing more), then
        # the disk dies.  Killing the disk first would let the workload outlive
        # it and be told that an fsync succeeded after the journal aborted;
        # killing the workload first would let the kernel finish flushes it had
        # in flight, hiding a durability call that returned too early.
        items = list(workload)
        self._plfs.freeze()
        _signal(items)
        self._plfs.crash(remount=False)
        _wait(items)
        self._unmount_and_detach()
        self.cuts += 1
        survivor = self.workdir / f"survivor-{self.cuts}.img"
        _extract(self._backing, IMAGE, survivor)
        shutil.rmtree(self._backing, ignore_errors=True)
        self._images.append(survivor)
        if powerloss:
            self._attach_and_mount(self._start_volume(survivor), direct_io=self.direct_io)
        else:
            self._plfs = None
            self._attach_and_mount(survivor, direct_io=False)
        return survivor

    # --- teardown -------------------------------------------------------------------------

    def _unmount_and_detach(self) -> None:
        errors = []
        if self._mounted:
            try:
                if is_mounted(self.mountpoint):
                    _umount(self.mountpoint)
                self._mounted = False
            except RealFSError as exc:
                errors.append(str(exc))
        if self._device is not None:
            # A lazily unmounted file system keeps its device busy; losetup -d then
            # marks it to be freed once the kernel lets go, which is all we need.
            result = subprocess.run(["losetup", "-d", self._device], capture_output=True, text=True)
            if result.returncode != 0 and "No such device" not in result.stderr:
                errors.append(f"losetup -d {self._device}: {result.stderr.strip()}")
            self._device = None
        if errors:
            raise RealFSError("; ".join(errors))

    def close(self, *, keep_images: bool = False) -> None:
        """Unmount, detach and stop everything this harness started, whatever state it is in."""
        errors = []
        try:
            self._unmount_and_detach()
        except RealFSError as exc:
            errors.append(str(exc))
        if self._plfs is not None and self._plfs.mounted:
            try:
                self._plfs.crash(remount=False)  # a clean unmount would copy the whole image to the backing
            except TransferCoreError as exc:
                errors.append(str(exc))
        self._plfs = None
        if self._backing is not None:
            shutil.rmtree(self._backing, ignore_errors=True)
        if not keep_images:
            for image in self._images:
                with contextlib.suppress(FileNotFoundError):
                    image.unlink()
            self._images.clear()
        if errors:
            raise RealFSError("teardown of the real-file-system harness: " + "; ".join(errors))

    def __enter__(self) -> RealFS:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.close()
        except RealFSError:
            if exc_type is None:
                raise


def _signal(items: list[subprocess.Popen[str] | subprocess.Popen[bytes] | int]) -> None:
    """SIGKILL every process, or its group when it leads one."""
    for item in items:
        pid = item if isinstance(item, int) else item.pid
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)


def _wait(items: list[subprocess.Popen[str] | subprocess.Popen[bytes] | int]) -> None:
    """Wait until every process is gone (a killed one may first finish a system call)."""
    deadline = time.monotonic() + _TIMEOUT
    for item in items:
        if isinstance(item, int):
            while _alive(item):
                if time.monotonic() > deadline:
                    raise RealFSError(f"process {item} did not die within {_TIMEOUT} s of SIGKILL")
                time.sleep(0.005)
        else:
            # Reaped here; the caller still reads what it printed from its pipes.
            try:
                item.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise RealFSError(f"process {item.pid} did not die within {_TIMEOUT} s of SIGKILL") from None


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie has finished: it can write nothing more)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _umount(mountpoint: Path) -> None:
    deadline = time.monotonic() + 10.0
    while True:
        result = subprocess.run(["umount", str(mountpoint)], capture_output=True, text=True)
        if result.returncode == 0 or not is_mounted(mountpoint):
            return
        if "busy" not in result.stderr or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # a killed process may still be closing its files there
    lazy = subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, text=True)
    if lazy.returncode != 0 and is_mounted(mountpoint):
        raise RealFSError(f"cannot unmount {mountpoint}: {result.stderr.strip()}; {lazy.stderr.strip()}")


def _extract(backing: Path, name: str, dest: Path) -> None:
    """Write the durable content of ``name`` on the volume kept in ``backing`` to ``dest``."""
    volume = Volume.load(backing, host_fsync=False)  # exactly what a remount would show
    try:
        node = volume.resolve("/" + name)
    except FileNotFoundError:
        raise RealFSError(f"the image {name} did not survive on the power-loss volume") from None
    size = volume.size(node)
    with open(dest, "wb") as out:
        for offset in range(0, size, 8 * MiB):
            out.write(volume.read(node, offset, 8 * MiB))


__all__ = ["FILESYSTEMS", "LoopUnavailable", "RealFS", "RealFSError", "check_loop", "make_filesystem"]
