"""Mount, crash and unmount a real FUSE power-loss file system."""

from __future__ import annotations

import contextlib
import errno
import os

import pytest

from transfercore.errors import TransferCoreError
from transfercore.testing.powerloss import PowerLossError, PowerLossFS, check_fuse, is_mounted

pytestmark = pytest.mark.fuse


def fsync_path(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def test_fuse_is_usable_here():
    # CI installs fuse3 and mfusepy: a missing piece must fail, not skip.
    check_fuse()


def test_mount_shows_up_in_the_mount_table(plfs):
    assert is_mounted(plfs.mountpoint)
    assert os.listdir(plfs.mountpoint) == []


def test_crash_drops_unsynced_bytes_and_keeps_synced_ones(plfs):
    path = os.path.join(plfs.mountpoint, "f")
    with open(path, "wb") as fh:
        fh.write(b"durable")
        fh.flush()
        os.fdatasync(fh.fileno())
        fh.write(b"+lost")
    fsync_path(plfs.mountpoint)
    with open(path, "rb") as fh:
        assert fh.read() == b"durable+lost"
    plfs.crash()
    assert plfs.crashes == 1
    with open(path, "rb") as fh:
        assert fh.read() == b"durable"


def test_new_file_without_directory_fsync_vanishes(plfs):
    path = os.path.join(plfs.mountpoint, "f")
    with open(path, "wb") as fh:
        fh.write(b"x")
        os.fsync(fh.fileno())
    plfs.crash()
    assert not os.path.exists(path)


def test_open_descriptor_fails_after_crash(plfs):
    path = os.path.join(plfs.mountpoint, "f")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"before")
        plfs.crash()
        with pytest.raises(OSError) as info:
            os.write(fd, b"after")
            os.fsync(fd)
        assert info.value.errno in (errno.ENOTCONN, errno.EIO, errno.ECONNABORTED, errno.EBADF)
    finally:
        with contextlib.suppress(OSError):  # close() flushes to the dead mount too
            os.close(fd)
    assert not os.path.exists(path)


def test_clean_unmount_makes_everything_durable(tmp_path):
    fs = PowerLossFS(tmp_path / "b", tmp_path / "m", host_fsync=False)
    with fs:
        os.mkdir(tmp_path / "m" / "d")
        (tmp_path / "m" / "d" / "f").write_bytes(b"kept")
    assert not is_mounted(tmp_path / "m")
    with fs:
        assert (tmp_path / "m" / "d" / "f").read_bytes() == b"kept"


def test_inode_numbers_are_stable_across_crashes(plfs):
    path = os.path.join(plfs.mountpoint, "f")
    with open(path, "wb") as fh:
        os.fsync(fh.fileno())
    fsync_path(plfs.mountpoint)
    before = os.stat(path).st_ino
    plfs.crash()
    assert os.stat(path).st_ino == before


def test_mounting_twice_is_refused(plfs, tmp_path):
    other = PowerLossFS(tmp_path / "other", plfs.mountpoint)
    with pytest.raises(PowerLossError) as info:
        other.mount()
    assert isinstance(info.value, TransferCoreError)
    assert "already mounted" in str(info.value)


def test_crash_needs_a_mount(tmp_path):
    with pytest.raises(PowerLossError):
        PowerLossFS(tmp_path / "b", tmp_path / "m").crash()


def test_unmount_of_busy_mount_says_what_to_do(plfs):
    fd = os.open(os.path.join(plfs.mountpoint, "f"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with pytest.raises(PowerLossError) as info:
            plfs.unmount()
        assert "crash()" in str(info.value)
    finally:
        os.close(fd)
    plfs.unmount()
    assert not plfs.mounted


def test_mount_reports_why_the_daemon_died(tmp_path):
    (tmp_path / "b" / "inodes").mkdir(parents=True)
    (tmp_path / "b" / "inodes" / "1.meta").write_text("not json")
    fs = PowerLossFS(tmp_path / "b", tmp_path / "m")
    with pytest.raises(PowerLossError) as info:
        fs.mount()
    assert "exited" in str(info.value) and "JSONDecodeError" in str(info.value)
    assert not fs.mounted
