"""complete_batch on POSIX: each sync mode publishes verified objects, syncs
each directory once, and never publishes a refused one."""

import os

import pytest
from transfercore_posix import fsutil, names
from transfercore_posix.batchsync import SYNCFS_FROM

from transfercore import driverkit
from transfercore.errors import ChecksumMismatch
from transfercore.registry import open_location
from transfercore.testing.checks import batch
from transfercore.testing.subject import KitOptions, Subject


def _batch(driver, root, n):
    writers = []
    for i in range(n):
        w = driver.open_new(f"{root}/f{i}", i * 100)
        if i:
            w.write(0, bytes([i]) * (i * 100))
        assert w.set_metadata(mode=0o640, mtime_ns=10**18 + i)
        writers.append(w)
    return writers


@pytest.mark.parametrize("mode", ["fsync", "syncfs", "auto"])
def test_each_sync_mode_publishes_verified_objects(tmp_path, monkeypatch, mode):
    driver = open_location(f"posix://{tmp_path}?batch_sync={mode}").driver
    calls = {"syncfs": 0, "dirs": []}
    real_syncfs, real_inode = fsutil.syncfs, driverkit.fsync_inode

    def counting_syncfs(fd, what):
        calls["syncfs"] += 1
        real_syncfs(fd, what)

    def counting_dir(d, what):
        calls["dirs"].append(d)
        real_inode(d, what)

    monkeypatch.setattr("transfercore_posix.writer.syncfs", counting_syncfs)
    monkeypatch.setattr("transfercore_posix.batchsync.fsync_inode", counting_dir)
    writers = _batch(driver, tmp_path, 6)

    def verify(w):
        buf = bytearray(w.size)
        if w.size:
            w.read_durable(0, buf)
        if w.size == 300:
            raise ChecksumMismatch("CRC32C", "a", "b")

    results = driver.complete_batch(writers, verify)
    assert [r is None for r in results] == [True, True, True, False, True, True]
    # the refused object keeps only its hidden partial file
    assert sorted(n for n in os.listdir(tmp_path) if not names.is_hidden(n)) == ["f0", "f1", "f2", "f4", "f5"]
    assert (tmp_path / "f5").read_bytes() == b"\x05" * 500
    st = os.stat(tmp_path / "f2")
    assert st.st_mode & 0o777 == 0o640 and st.st_mtime_ns == 10**18 + 2
    assert calls["dirs"] == [str(tmp_path)]  # one directory sync for the batch
    # auto: 6 objects are fewer than SYNCFS_FROM, so each is synced (concurrently)
    assert calls["syncfs"] == (1 if mode == "syncfs" else 0)
    driver.close()


def test_auto_mode_syncs_a_large_batch_with_one_syncfs(tmp_path, monkeypatch):
    driver = open_location(f"posix://{tmp_path}").driver
    calls = {"syncfs": 0, "fsync": 0}
    real_syncfs, real_fsync = fsutil.syncfs, os.fsync

    def counting_syncfs(fd, what):
        calls["syncfs"] += 1
        real_syncfs(fd, what)

    def counting_fsync(fd):
        calls["fsync"] += 1
        real_fsync(fd)

    monkeypatch.setattr("transfercore_posix.writer.syncfs", counting_syncfs)
    monkeypatch.setattr("transfercore_posix.writer.os.fsync", counting_fsync)
    writers = _batch(driver, tmp_path, SYNCFS_FROM)
    assert driver.complete_batch(writers) == [None] * SYNCFS_FROM
    if fsutil.fs_type(str(tmp_path)) in fsutil.SYNCFS_DURABLE:
        assert calls["syncfs"] == 1 and calls["fsync"] < SYNCFS_FROM  # no file synced on its own
    else:
        assert calls["syncfs"] == 0 and calls["fsync"] >= SYNCFS_FROM
    assert (tmp_path / f"f{SYNCFS_FROM - 1}").read_bytes() == bytes([SYNCFS_FROM - 1]) * ((SYNCFS_FROM - 1) * 100)
    driver.close()


def test_syncfs_mode_passes_the_batch_clause(tmp_path):
    s = Subject(f"posix://{tmp_path}?batch_sync=syncfs", KitOptions(seed=4))
    try:
        assert "one refused" in batch.check_batch(s)
    finally:
        s.cleanup()


def test_the_directories_of_a_batch_are_synced_together(tmp_path, monkeypatch):
    """Each directory once, all at the same time on the sync threads (one
    after the other, each cost a journal commit)."""
    import threading

    driver = open_location(f"posix://{tmp_path}?batch_sync=fsync").driver
    subs = ["a", "b", "c"]
    for sub in subs:
        (tmp_path / sub).mkdir()
    synced: list[tuple[str, str]] = []
    real_inode = driverkit.fsync_inode

    def recording(path, what):
        if os.path.isdir(path):
            synced.append((path, threading.current_thread().name))
        real_inode(path, what)

    monkeypatch.setattr("transfercore_posix.batchsync.fsync_inode", recording)
    writers = []
    for sub in subs:
        for i in range(2):
            w = driver.open_new(f"{tmp_path}/{sub}/f{i}", 10)
            w.write(0, b"x" * 10)
            writers.append(w)
    assert driver.complete_batch(writers) == [None] * 6
    assert sorted(path for path, _ in synced) == [str(tmp_path / sub) for sub in subs]
    assert all(thread.startswith("posix-sync") for _, thread in synced)
    driver.close()
