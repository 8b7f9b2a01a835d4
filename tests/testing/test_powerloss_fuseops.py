"""The POSIX calls a driver makes, through the kernel, on the power-loss file system."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

pytestmark = pytest.mark.fuse


def fsync_dir(path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def test_pwrite_pread_and_sparse_holes(plfs):
    path = os.path.join(plfs.mountpoint, "f")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, b"B" * 10, 100)
        os.pwrite(fd, b"A" * 10, 0)
        assert os.fstat(fd).st_size == 110
        assert os.pread(fd, 110, 0) == b"A" * 10 + b"\0" * 90 + b"B" * 10
        os.ftruncate(fd, 5)
        assert os.pread(fd, 100, 0) == b"AAAAA"
    finally:
        os.close(fd)


def test_directory_listing_and_attributes(plfs):
    mnt = plfs.mountpoint
    os.mkdir(os.path.join(mnt, "d"), 0o750)
    with open(os.path.join(mnt, "d", "f"), "wb") as fh:
        fh.write(b"123")
    os.chmod(os.path.join(mnt, "d", "f"), 0o600)
    os.utime(os.path.join(mnt, "d", "f"), ns=(1_000_000_000, 2_000_000_000))
    assert sorted(os.listdir(mnt)) == ["d"]
    st = os.stat(os.path.join(mnt, "d", "f"))
    assert (stat.S_IMODE(st.st_mode), st.st_size, st.st_mtime_ns) == (0o600, 3, 2_000_000_000)
    assert stat.S_ISDIR(os.stat(os.path.join(mnt, "d")).st_mode)


def test_atomic_publish_by_rename_survives_only_after_directory_fsync(plfs):
    mnt = plfs.mountpoint
    part = os.path.join(mnt, "obj.part")
    with open(part, "wb") as fh:
        fh.write(b"whole")
        fh.flush()
        os.fsync(fh.fileno())
    fsync_dir(mnt)
    os.rename(part, os.path.join(mnt, "obj"))
    plfs.crash()
    assert os.listdir(mnt) == ["obj.part"]
    os.rename(part, os.path.join(mnt, "obj"))
    fsync_dir(mnt)
    plfs.crash()
    assert os.listdir(mnt) == ["obj"]
    with open(os.path.join(mnt, "obj"), "rb") as fh:
        assert fh.read() == b"whole"


def test_unlink_and_rmdir(plfs):
    mnt = plfs.mountpoint
    os.mkdir(os.path.join(mnt, "d"))
    open(os.path.join(mnt, "d", "f"), "wb").close()
    with pytest.raises(OSError):
        os.rmdir(os.path.join(mnt, "d"))
    os.unlink(os.path.join(mnt, "d", "f"))
    os.rmdir(os.path.join(mnt, "d"))
    assert os.listdir(mnt) == []


def test_hard_link(plfs):
    mnt = plfs.mountpoint
    with open(os.path.join(mnt, "a"), "wb") as fh:
        fh.write(b"L")
    os.link(os.path.join(mnt, "a"), os.path.join(mnt, "b"))
    assert os.stat(os.path.join(mnt, "b")).st_nlink == 2
    assert os.stat(os.path.join(mnt, "a")).st_ino == os.stat(os.path.join(mnt, "b")).st_ino


def test_fallocate_extends_with_zeros(plfs):
    path = os.path.join(plfs.mountpoint, "f")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, 4096)
        assert os.fstat(fd).st_size == 4096
        assert os.pread(fd, 4096, 0) == bytes(4096)
    finally:
        os.close(fd)


def test_other_users_get_ownership_and_permission_checks(plfs):
    # A GridFTP server maps anonymous users to 'nobody': the mount must serve them.
    mnt = plfs.mountpoint
    os.mkdir(os.path.join(mnt, "pub"))
    os.chown(os.path.join(mnt, "pub"), 65534, 65534)
    script = "open('pub/f', 'wb').write(b'n')\ntry:\n open('x', 'wb')\nexcept PermissionError:\n print('denied')"
    out = subprocess.run(
        ["python3", "-c", script], cwd=mnt, user=65534, group=65534, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "denied"
    assert os.stat(os.path.join(mnt, "pub", "f")).st_uid == 65534
