"""mkdirs and set_metadata_many: many directories made durable together,
each change reported on its own."""

from __future__ import annotations

import os

import pytest
from transfercore_posix import batchsync
from transfercore_posix.batchsync import SYNCFS_FROM

from transfercore.contract import MetadataChange
from transfercore.errors import AlreadyExists, NotFound, StorageError
from transfercore.registry import open_location


def _driver(root, mode):
    return open_location(f"posix://{root}?batch_sync={mode}").driver


@pytest.fixture
def synced(monkeypatch):
    """The paths given to fsync_inode and the count of syncfs calls, the real calls still made."""
    seen = {"inodes": [], "syncfs": 0}
    real_inode, real_syncfs = batchsync.fsync_inode, batchsync.syncfs

    def inode(path, what):
        seen["inodes"].append(path)
        real_inode(path, what)

    def syncfs(fd, what):
        seen["syncfs"] += 1
        real_syncfs(fd, what)

    monkeypatch.setattr(batchsync, "fsync_inode", inode)
    monkeypatch.setattr(batchsync, "syncfs", syncfs)
    return seen


def test_set_metadata_many_applies_every_change_and_syncs_each_changed_inode_once(tmp_path, synced):
    for d in ("a", "b", "a/c"):
        (tmp_path / d).mkdir()
    (tmp_path / "f").write_bytes(b"x")
    os.symlink("f", tmp_path / "l")
    driver = _driver(tmp_path, "fsync")
    changes = [MetadataChange(str(tmp_path / rel), mode=0o750, mtime_ns=10**18 + i)
               for i, rel in enumerate(("a/c", "a", "b", "f"))]
    changes.append(MetadataChange(str(tmp_path / "l"), mtime_ns=10**18 + 7))
    changes.append(MetadataChange(str(tmp_path / "missing"), mode=0o700))
    results = driver.set_metadata_many(changes)
    assert results[:5] == [None] * 5
    assert isinstance(results[5], NotFound) and "missing" in str(results[5])
    for i, rel in enumerate(("a/c", "a", "b", "f")):
        st = os.lstat(tmp_path / rel)
        assert (st.st_mode & 0o7777, st.st_mtime_ns) == (0o750, 10**18 + i)
    assert os.lstat(tmp_path / "l").st_mtime_ns == 10**18 + 7
    # A link cannot be synced on its own; every other changed inode once.
    assert sorted(synced["inodes"]) == sorted(str(tmp_path / rel) for rel in ("a/c", "a", "b", "f"))
    assert synced["syncfs"] == 0


def test_many_changes_on_a_syncfs_file_system_cost_one_syncfs(tmp_path, synced):
    names = [f"d{i}" for i in range(SYNCFS_FROM)]
    for name in names:
        (tmp_path / name).mkdir()
    results = _driver(tmp_path, "syncfs").set_metadata_many(
        [MetadataChange(str(tmp_path / n), mtime_ns=10**18) for n in names])
    assert results == [None] * len(names)
    assert synced == {"inodes": [], "syncfs": 1}
    assert all(os.stat(tmp_path / n).st_mtime_ns == 10**18 for n in names)


def test_a_failed_syncfs_fails_every_change_it_was_to_make_durable(tmp_path, monkeypatch):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()

    def failing(fd, what):
        raise StorageError(f"{what}: input/output error")

    monkeypatch.setattr(batchsync, "syncfs", failing)
    results = _driver(tmp_path, "syncfs").set_metadata_many(
        [MetadataChange(str(tmp_path / n), mode=0o700) for n in ("a", "b")])
    assert all(isinstance(r, StorageError) and "input/output error" in str(r) for r in results)


def test_mkdirs_syncs_each_parent_once_and_reports_each_directory(tmp_path, synced):
    (tmp_path / "old").mkdir()
    wanted = ["a", "a/b", "a/c", "old", "d", "a/b/e"]
    results = _driver(tmp_path, "fsync").mkdirs([str(tmp_path / w) for w in wanted])
    assert [r is None for r in results] == [True, True, True, False, True, True]
    assert isinstance(results[3], AlreadyExists)
    assert all((tmp_path / w).is_dir() for w in wanted)
    assert sorted(synced["inodes"]) == sorted([str(tmp_path), str(tmp_path / "a"), str(tmp_path / "a/b")])


def test_mkdirs_fails_only_the_directories_whose_parent_could_not_be_synced(tmp_path, monkeypatch):
    real = batchsync.fsync_inode

    def failing_under_a(path, what):
        if path == str(tmp_path / "a"):
            raise StorageError(f"cannot sync {what}: input/output error")
        real(path, what)

    monkeypatch.setattr(batchsync, "fsync_inode", failing_under_a)
    results = _driver(tmp_path, "fsync").mkdirs([str(tmp_path / w) for w in ("a", "a/b", "a/c", "d")])
    assert results[0] is None and results[3] is None
    assert all(isinstance(r, StorageError) for r in results[1:3])


def test_a_listing_looks_at_each_entry_relative_to_its_directory(tmp_path):
    """scan() lists through a descriptor of the directory: every entry's lstat
    names the entry alone (a deep tree's path is not resolved again for each)."""
    import shutil
    import subprocess
    import sys

    if shutil.which("strace") is None:
        pytest.fail("strace is needed (Debian package strace)")
    deep = tmp_path.joinpath(*[f"level{i}" for i in range(12)])
    deep.mkdir(parents=True)
    for i in range(5):
        (deep / f"entry{i}").write_bytes(b"x" * i)
    os.symlink("entry0", deep / "link")
    script = tmp_path / "scan.py"
    script.write_text(
        "import sys\n"
        "from transfercore.registry import open_location\n"
        "d = open_location('posix://' + sys.argv[1]).driver\n"
        "print(sorted((i.path.rsplit('/', 1)[1], i.size, i.link) for i in d.scan(sys.argv[1])))\n"
    )
    trace = tmp_path / "trace"
    proc = subprocess.run(["strace", "-f", "-qq", "-o", str(trace), "-e", "trace=lstat,newfstatat,statx",
                           sys.executable, str(script), str(deep)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(sorted([(f"entry{i}", i, None) for i in range(5)] + [("link", 0, "entry0")]))
    calls = trace.read_text()
    assert f'"{deep}/entry' not in calls and f'"{deep}/link' not in calls
    assert len([c for c in calls.splitlines() if '"entry' in c or '"link"' in c]) == 6


@pytest.mark.parametrize("method", ["scan", "list"])
def test_an_entry_that_cannot_be_looked_at_is_said_not_left_out(method):
    """A directory that can be read but not searched lists its names, and
    every lstat of them fails: the listing says so (the walk then stops with
    that error, as for a directory that cannot be read) instead of leaving
    the entries out, which made a tree copy end "done" without them.  The
    same for the listing a server shows (``list``): a client's recursive
    download of it ended without them, unsaid."""
    import shutil
    import stat
    import subprocess
    import sys
    import tempfile

    top = tempfile.mkdtemp(prefix="transfercore-unsearchable-", dir="/tmp")  # (others may enter it)
    try:
        os.chmod(top, 0o755)
        locked = os.path.join(top, "locked")
        os.mkdir(locked)
        with open(os.path.join(locked, "file"), "w") as fh:
            fh.write("x")
        os.chmod(locked, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)  # r--r--r--: listed, not searched
        script = (
            "import os, sys\n"
            "from transfercore.errors import PermissionDenied\n"
            "from transfercore.registry import open_location\n"
            "driver = open_location('posix:///tmp').driver\n"
            "if os.geteuid() == 0:\n"
            "    os.setgroups([]); os.setgid(65534); os.setuid(65534)  # (root may search anything)\n"
            "try:\n"
            f"    print('listed', sorted(i.path for i in driver.{method}(sys.argv[1])))\n"
            "except PermissionDenied as exc:\n"
            "    print('refused', exc)\n"
        )
        out = subprocess.run([sys.executable, "-c", script, locked], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("refused cannot look at ") and f"{locked}/file" in out.stdout, out.stdout
    finally:
        os.chmod(os.path.join(top, "locked"), 0o755)
        shutil.rmtree(top)


def test_an_entry_removed_while_listed_is_left_out(tmp_path, monkeypatch):
    from transfercore_posix import namespace

    (tmp_path / "kept").write_bytes(b"k")
    (tmp_path / "gone").write_bytes(b"g")
    real = os.scandir

    class Removed:
        name = "gone"

        def stat(self, follow_symlinks=True):
            raise FileNotFoundError(2, "No such file or directory")

    class Listing:
        def __init__(self, fd):
            self._it = real(fd)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._it.close()

        def __iter__(self):
            for entry in self._it:
                yield Removed() if entry.name == "gone" else entry

    monkeypatch.setattr(namespace.os, "scandir", Listing)
    driver = open_location(f"posix://{tmp_path}").driver
    assert [i.path.rsplit("/", 1)[1] for i in driver.scan(str(tmp_path))] == ["kept"]


def test_a_listing_leaves_out_links_that_lead_nowhere_and_shows_the_rest(tmp_path):
    from transfercore.registry import open_location

    (tmp_path / "file").write_bytes(b"abc")
    (tmp_path / "sub").mkdir()
    os.symlink("missing", tmp_path / "dangling")
    os.symlink("loop", tmp_path / "loop")
    os.symlink("file/inside", tmp_path / "through-a-file")
    os.symlink("file", tmp_path / "to-file")
    driver = open_location(f"posix://{tmp_path}").driver
    listed = {i.name: i for i in driver.list(str(tmp_path))}
    assert sorted(listed) == ["file", "sub", "to-file"]
    assert listed["to-file"].size == 3 and listed["sub"].is_dir
