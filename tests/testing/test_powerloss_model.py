"""The power-loss model without FUSE: what survives Volume.load() after a crash."""

from __future__ import annotations

import errno
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transfercore.testing.powerloss.model import Volume


def crash(vol: Volume, backing) -> Volume:
    """Forget the running volume: only the backing directory remains."""
    del vol
    return Volume.load(backing, host_fsync=False)


def content(vol: Volume, path: str) -> bytes:
    node = vol.resolve(path)
    return vol.read(node, 0, vol.size(node))


@pytest.fixture
def backing(tmp_path):
    return tmp_path / "backing"


@pytest.fixture
def vol(backing):
    return Volume.load(backing, host_fsync=False)


def test_fresh_volume_has_an_empty_root(vol):
    assert vol.listdir("/") == []
    assert vol.resolve("/").is_dir


def test_unsynced_file_is_lost(vol, backing):
    node = vol.create("/f", 0o644)
    vol.write(node, 0, b"data")
    vol = crash(vol, backing)
    assert vol.listdir("/") == []


def test_fsync_of_file_alone_does_not_make_its_entry_durable(vol, backing):
    node = vol.create("/f", 0o644)
    vol.write(node, 0, b"data")
    vol.fsync(node)
    vol = crash(vol, backing)
    assert vol.listdir("/") == []
    # the orphaned record is collected, as fsck would
    assert sorted(os.listdir(backing / "inodes")) == ["1.meta"]


def test_fsync_of_file_and_parent_keeps_synced_bytes_only(vol, backing):
    node = vol.create("/f", 0o640)
    vol.write(node, 0, b"durable")
    vol.fsync(node)
    vol.fsyncdir(vol.resolve("/"))
    vol.write(node, 7, b" volatile")
    vol.write(node, 0, b"D")
    vol = crash(vol, backing)
    assert content(vol, "/f") == b"durable"
    assert stat.S_IMODE(vol.resolve("/f").mode) == 0o640


def test_parent_fsync_without_file_fsync_keeps_an_empty_file(vol, backing):
    node = vol.create("/f", 0o644)
    vol.write(node, 0, b"data")
    vol.fsyncdir(vol.resolve("/"))
    vol = crash(vol, backing)
    assert content(vol, "/f") == b""


def test_new_directory_needs_its_parent_fsynced(vol, backing):
    sub = vol.mkdir("/d", 0o755)
    node = vol.create("/d/f", 0o644)
    vol.write(node, 0, b"x")
    vol.fsync(node)
    vol.fsyncdir(sub)
    survivor = crash(vol, backing)
    assert survivor.listdir("/") == []


def test_nested_file_survives_when_every_level_is_synced(vol, backing):
    sub = vol.mkdir("/d", 0o755)
    node = vol.create("/d/f", 0o644)
    vol.write(node, 0, b"x")
    vol.fsync(node)
    vol.fsyncdir(sub)
    vol.fsyncdir(vol.resolve("/"))
    vol = crash(vol, backing)
    assert content(vol, "/d/f") == b"x"
    assert vol.resolve("/").nlink == 3


def test_rename_is_durable_only_after_parent_fsync(vol, backing):
    node = vol.create("/a", 0o644)
    vol.write(node, 0, b"1")
    vol.fsync(node)
    vol.fsyncdir(vol.resolve("/"))
    vol.rename("/a", "/b")
    vol = crash(vol, backing)
    assert vol.listdir("/") == ["a"]
    vol.rename("/a", "/b")
    vol.fsyncdir(vol.resolve("/"))
    vol = crash(vol, backing)
    assert vol.listdir("/") == ["b"]
    assert content(vol, "/b") == b"1"


def test_rename_over_existing_file_replaces_it_when_synced(vol, backing):
    for name, payload in (("/old", b"old"), ("/new.part", b"new")):
        node = vol.create(name, 0o644)
        vol.write(node, 0, payload)
        vol.fsync(node)
    vol.fsyncdir(vol.resolve("/"))
    vol.rename("/new.part", "/old")
    assert content(vol, "/old") == b"new"
    vol.fsyncdir(vol.resolve("/"))
    vol = crash(vol, backing)
    assert vol.listdir("/") == ["old"]
    assert content(vol, "/old") == b"new"


def test_unlink_comes_back_until_parent_is_synced(vol, backing):
    node = vol.create("/f", 0o644)
    vol.write(node, 0, b"keep")
    vol.fsync(node)
    vol.fsyncdir(vol.resolve("/"))
    vol.unlink("/f")
    vol = crash(vol, backing)
    assert content(vol, "/f") == b"keep"
    vol.unlink("/f")
    vol.fsyncdir(vol.resolve("/"))
    vol = crash(vol, backing)
    assert vol.listdir("/") == []


def test_truncate_after_fsync_is_undone_by_crash(vol, backing):
    node = vol.create("/f", 0o644)
    vol.write(node, 0, b"0123456789")
    vol.fsync(node)
    vol.fsyncdir(vol.resolve("/"))
    vol.truncate(node, 3)
    assert content(vol, "/f") == b"012"
    vol = crash(vol, backing)
    assert content(vol, "/f") == b"0123456789"


def test_write_past_end_leaves_a_zero_hole_that_is_persisted(vol, backing):
    node = vol.create("/f", 0o644)
    vol.write(node, 4, b"tail")
    vol.fsync(node)
    vol.fsyncdir(vol.resolve("/"))
    vol = crash(vol, backing)
    assert content(vol, "/f") == b"\0\0\0\0tail"


def test_sync_all_makes_everything_durable(vol, backing):
    vol.mkdir("/d", 0o755)
    node = vol.create("/d/f", 0o644)
    vol.write(node, 0, b"all")
    vol.sync_all()
    vol = crash(vol, backing)
    assert content(vol, "/d/f") == b"all"


def test_hard_link_counts_and_survival(vol, backing):
    node = vol.create("/a", 0o644)
    vol.write(node, 0, b"L")
    vol.link("/a", "/b")
    assert node.nlink == 2
    vol.fsync(node)
    vol.fsyncdir(vol.resolve("/"))
    vol = crash(vol, backing)
    assert vol.resolve("/a") is vol.resolve("/b")
    assert vol.resolve("/a").nlink == 2


def test_unlinked_open_file_stays_readable_until_released(vol):
    node = vol.create("/f", 0o644)
    vol.opened(node)
    vol.write(node, 0, b"open")
    vol.unlink("/f")
    assert vol.read(node, 0, 4) == b"open"
    vol.released(node)
    with pytest.raises(OSError) as info:
        vol.inode(node.ino)
    assert info.value.errno == errno.EBADF


@pytest.mark.parametrize(
    ("action", "code"),
    [
        (lambda v: v.resolve("/missing"), errno.ENOENT),
        (lambda v: v.create("/d", 0o644), errno.EEXIST),
        (lambda v: v.rmdir("/d"), errno.ENOTEMPTY),
        (lambda v: v.unlink("/d"), errno.EISDIR),
        (lambda v: v.rmdir("/d/f"), errno.ENOTDIR),
        (lambda v: v.resolve("/d/f/x"), errno.ENOTDIR),
        (lambda v: v.rename("/d", "/d/inside"), errno.EINVAL),
        (lambda v: v.link("/d", "/e"), errno.EPERM),
    ],
)
def test_bad_operations_raise_the_posix_error(vol, action, code):
    vol.mkdir("/d", 0o755)
    vol.create("/d/f", 0o644)
    with pytest.raises(OSError) as info:
        action(vol)
    assert info.value.errno == code


def test_stats_count_sync_calls(vol):
    node = vol.create("/f", 0o644)
    vol.fsync(node)
    vol.fsync(node)
    vol.fsyncdir(vol.resolve("/"))
    assert (vol.stats().file_syncs, vol.stats().dir_syncs) == (2, 1)


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(0, 300), st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("truncate"), st.integers(0, 300)),
        st.tuples(st.just("fsync")),
        st.tuples(st.just("crash")),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(ops=_ops)
def test_file_after_any_crash_equals_its_last_fsynced_content(tmp_path_factory, ops):
    backing = tmp_path_factory.mktemp("b")
    vol = Volume.load(backing, host_fsync=False)
    node = vol.create("/f", 0o644)
    vol.fsyncdir(vol.resolve("/"))
    live, durable = bytearray(), b""
    for op in ops:
        if op[0] == "write":
            _, offset, payload = op
            vol.write(node, offset, payload)
            if offset > len(live):
                live.extend(bytes(offset - len(live)))
            live[offset : offset + len(payload)] = payload
        elif op[0] == "truncate":
            vol.truncate(node, op[1])
            live = live[: op[1]] + bytearray(max(0, op[1] - len(live)))
        elif op[0] == "fsync":
            vol.fsync(node)
            durable = bytes(live)
        else:
            vol = crash(vol, backing)
            node = vol.resolve("/f")
            live = bytearray(durable)
        assert content(vol, "/f") == bytes(live)
    vol = crash(vol, backing)
    assert content(vol, "/f") == durable
