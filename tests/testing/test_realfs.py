"""Power cuts under real ext4, xfs and btrfs (loop device over the FUSE power-loss volume).

These need root, loop devices, FUSE, e2fsprogs, xfsprogs and btrfs-progs; CI has them all,
so a missing piece fails the test with what to install, never skips it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from transfercore.testing.powerloss import is_mounted
from transfercore.testing.powerloss.realfs import (
    FILESYSTEMS,
    LoopUnavailable,
    RealFS,
    RealFSError,
    check_loop,
)

pytestmark = pytest.mark.fuse



def write(path, data: bytes, *, sync: bool) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        if sync:
            os.fdatasync(fh.fileno())


def fsync_dir(path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def our_loop_devices(workdir) -> list[str]:
    out = subprocess.run(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"],
                         capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if str(workdir) in line]


@pytest.mark.parametrize("fstype", FILESYSTEMS)
def test_loop_devices_and_tools_are_usable_here(fstype):
    check_loop(fstype)


def test_an_unknown_file_system_is_refused_with_the_known_ones():
    with pytest.raises(LoopUnavailable, match="ext4, xfs, btrfs"):
        check_loop("vfat")


@pytest.mark.parametrize("fstype", FILESYSTEMS)
def test_a_flushed_file_survives_the_cut_and_an_unflushed_one_does_not(tmp_path, fstype):
    with RealFS(tmp_path, fstype) as fs:
        assert fs.on_powerloss and is_mounted(fs.mountpoint)
        write(fs.mountpoint / "kept", b"k" * 50_000, sync=True)
        fsync_dir(fs.mountpoint)
        write(fs.mountpoint / "lost", b"l" * 50_000, sync=False)
        (fs.mountpoint / "kept").rename(fs.mountpoint / "renamed-unsynced")
        # the running system sees everything
        assert (fs.mountpoint / "lost").read_bytes() == b"l" * 50_000
        survivor = fs.cut()
        assert survivor.is_file() and survivor.stat().st_size == fs.size
        assert not fs.on_powerloss and is_mounted(fs.mountpoint)
        names = set(os.listdir(fs.mountpoint)) - {"lost+found"}
        # the rename was never flushed: the durable name is the old one
        assert names == {"kept"}, names
        assert (fs.mountpoint / "kept").read_bytes() == b"k" * 50_000


def test_the_workload_is_killed_and_a_second_cut_follows_on_a_fresh_volume(tmp_path):
    with RealFS(tmp_path, "ext4") as fs:
        writer = subprocess.Popen(
            [sys.executable, "-c", "import sys, time\nf = open(sys.argv[1], 'w')\nprint('ready', flush=True)\n"
             "while True: f.write('x' * 4096); time.sleep(0.001)", str(fs.mountpoint / "busy")],
            stdout=subprocess.PIPE, text=True, start_new_session=True)
        try:
            assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
            write(fs.mountpoint / "one", b"1", sync=True)
            fsync_dir(fs.mountpoint)
        finally:
            fs.cut([writer], powerloss=True)
        assert writer.returncode == -9
        assert fs.on_powerloss and fs.cuts == 1
        assert (fs.mountpoint / "one").read_bytes() == b"1"
        write(fs.mountpoint / "two", b"2", sync=True)
        fsync_dir(fs.mountpoint)
        write(fs.mountpoint / "three", b"3", sync=False)
        fs.cut()
        assert fs.cuts == 2
        assert {"one", "two"} <= set(os.listdir(fs.mountpoint))
        assert "three" not in os.listdir(fs.mountpoint)


def test_close_ends_every_mount_and_device_it_started(tmp_path):
    fs = RealFS(tmp_path, "xfs")
    fs.open()
    device = fs.device
    assert device is not None and our_loop_devices(tmp_path) == [device]
    fs.cut(powerloss=True)
    fs.close()
    assert not is_mounted(fs.mountpoint) and not is_mounted(tmp_path / "volume")
    assert our_loop_devices(tmp_path) == []
    assert not list(tmp_path.glob("survivor-*.img")) and not list(tmp_path.glob("backing-*"))
    fs.close()  # twice is harmless


def test_cut_without_a_power_loss_volume_is_refused(tmp_path):
    with RealFS(tmp_path, "ext4") as fs:
        fs.cut()
        with pytest.raises(RealFSError, match="power-loss volume"):
            fs.cut()


def syncfs(path) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert libc.syncfs(fd) == 0, os.strerror(ctypes.get_errno())
    finally:
        os.close(fd)


@pytest.mark.parametrize("fstype", FILESYSTEMS)
def test_one_syncfs_makes_new_renamed_files_durable(tmp_path, fstype):
    # The flush syncfs(2) issues reaches the volume through the loop device, which
    # the FUSE volume alone never sees; the same files without it are lost.
    with RealFS(tmp_path, fstype) as fs:
        (fs.mountpoint / "d").mkdir()
        for i in range(50):
            write(fs.mountpoint / "d" / f".{i}.tmp", bytes([i]) * (1000 + i), sync=False)
            os.rename(fs.mountpoint / "d" / f".{i}.tmp", fs.mountpoint / "d" / str(i))
        syncfs(fs.mountpoint)
        (fs.mountpoint / "after").mkdir()
        write(fs.mountpoint / "after" / "x", b"x", sync=False)
        fs.cut()
        assert sorted(os.listdir(fs.mountpoint / "d"), key=int) == [str(i) for i in range(50)]
        for i in range(50):
            assert (fs.mountpoint / "d" / str(i)).read_bytes() == bytes([i]) * (1000 + i)
        assert not (fs.mountpoint / "after").exists()


def test_a_seeded_file_is_durable_under_its_name_without_any_mount(tmp_path):
    from transfercore.testing.powerloss.model import Volume

    source = tmp_path / "image"
    source.write_bytes(b"\0" * 10_000 + b"superblock" + b"\0" * 10_000)
    Volume.seed(tmp_path / "backing", "disk.img", source)
    volume = Volume.load(tmp_path / "backing")  # what a mount after a crash would show
    node = volume.resolve("/disk.img")
    assert volume.size(node) == 20_010
    assert volume.read(node, 10_000, 10) == b"superblock"
    with pytest.raises(FileExistsError):
        Volume.seed(tmp_path / "backing", "disk.img", source)


def test_freeze_needs_a_mounted_volume(tmp_path):
    from transfercore.testing.powerloss import PowerLossError, PowerLossFS

    with pytest.raises(PowerLossError, match="mounted"):
        PowerLossFS(tmp_path / "b", tmp_path / "m").freeze()
