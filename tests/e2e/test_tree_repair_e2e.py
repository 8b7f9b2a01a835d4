"""A rerun asks the destination: every damage to a finished tree copy is
repaired by running the same command again (the real CLI, real files)."""

import filecmp
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from transfercore.testing.throttle import Throttle, freeze, small_pipe, thaw
from transfercore.testing.trees import TreeSpec, make_tree

TIMEOUT = 120


def copy(src, dst, journal, *extra, expect=0):
    proc = subprocess.run(
        [sys.executable, "-m", "transfercore", "copy", "-r", str(src), str(dst), "--journal", str(journal), "--json",
         "--files", "4", "--whole-file-max", "64K", *extra],
        capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == expect, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[-1]["event"] == "tree-done"
    return events, proc.stderr


def identical(src: Path, dst: Path) -> None:
    """Same names, kinds, bytes, modes and times; no partial left anywhere."""
    names = []
    for dirpath, dirs, files in os.walk(src):
        for name in dirs + files:
            s = Path(dirpath) / name
            d = dst / s.relative_to(src)
            names.append(str(s.relative_to(src)))
            a, b = os.lstat(s), os.lstat(d)
            assert (a.st_mode, a.st_mtime_ns) == (b.st_mode, b.st_mtime_ns), f"{d} differs in mode or time"
            if s.is_symlink():
                assert os.readlink(s) == os.readlink(d)
            elif s.is_file():
                assert filecmp.cmp(s, d, shallow=False), f"{d} differs from its source"
    got = sorted(str(p.relative_to(dst)) for p in dst.rglob("*"))
    assert got == sorted(names), "the destination holds other entries than the source"


@pytest.fixture
def finished(tmp_path):
    src, dst, journal = tmp_path / "src", tmp_path / "dst", tmp_path / "j.db"
    make_tree(src, TreeSpec(files=120, max_size=200_000, large_files=2, large_size=300_000, seed=21))
    events, _ = copy(src, dst, journal)
    assert events[-1]["copied"] == events[-1]["files"]
    identical(src, dst)
    return src, dst, journal


def files(dst):
    return sorted(p for p in dst.rglob("*.dat") if not p.is_symlink())


def damage_delete(dst):
    files(dst)[3].unlink()
    return 1


def damage_overwrite_in_place(dst):
    victim = files(dst)[7]
    size = victim.stat().st_size
    st = victim.stat()
    with open(victim, "r+b") as f:  # same size, same time: only the change time tells
        f.write(b"\x00" * min(size, 10) if size else b"")
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    big = sorted((dst / "big").iterdir())[0]
    big.write_bytes(b"corrupted")
    return 2 if size else 1


def damage_truncate(dst):
    victim = max(files(dst), key=lambda p: p.stat().st_size)
    os.truncate(victim, victim.stat().st_size // 2)
    return 1


def damage_remove_directory(dst):
    victim = next(p for p in sorted(dst.rglob("d*")) if p.is_dir() and any(p.iterdir()))
    count = sum(1 for _ in victim.rglob("*")) + 1
    shutil.rmtree(victim)
    return count


def damage_remove_tree(dst):
    count = sum(1 for _ in dst.rglob("*"))
    shutil.rmtree(dst)
    return count


def damage_file_becomes_directory(dst):
    victim = files(dst)[5]
    victim.unlink()
    victim.mkdir()
    return 1


@pytest.mark.parametrize("damage", [damage_delete, damage_overwrite_in_place, damage_truncate,
                                    damage_remove_directory, damage_remove_tree, damage_file_becomes_directory])
def test_the_same_command_repairs_the_damage(finished, damage):
    src, dst, journal = finished
    expected = damage(dst)
    events, _ = copy(src, dst, journal)
    done = events[-1]
    identical(src, dst)
    assert done["repaired"] == expected and done["failed"] == 0
    repaired = [e["path"] for e in events if e["event"] == "repair"]
    assert len(repaired) == expected
    written = {e["path"] for e in events if e["event"] == "file-done" and e["written"]}
    assert written <= set(repaired)
    # and a run after the repair finds nothing to do
    events, _ = copy(src, dst, journal)
    assert events[-1]["repaired"] == 0 and events[-1]["copied"] == 0


def test_an_intact_tree_is_only_compared(finished):
    src, dst, journal = finished
    before = {p: os.lstat(p) for p in [dst, *dst.rglob("*")]}
    events, _ = copy(src, dst, journal)
    done = events[-1]
    assert (done["copied"], done["bytes_written"], done["repaired"]) == (0, 0, 0)
    assert done["kept"] == done["files"]
    after = {p: os.lstat(p) for p in [dst, *dst.rglob("*")]}
    assert {p: (s.st_ino, s.st_ctime_ns) for p, s in before.items()} == \
        {p: (s.st_ino, s.st_ctime_ns) for p, s in after.items()}, "an intact rerun changed the destination"


def test_a_directory_in_the_way_that_is_not_empty_is_listed_not_removed(finished):
    src, dst, journal = finished
    victim = files(dst)[2]
    victim.unlink()
    victim.mkdir()
    (victim / "keep-me").write_text("someone's data")
    _events, err = copy(src, dst, journal, expect=1)
    assert str(victim.relative_to(dst)) in err and "move it away" in err
    assert (victim / "keep-me").read_text() == "someone's data"
    shutil.rmtree(victim)
    copy(src, dst, journal)
    identical(src, dst)


def partial_files(dst: Path) -> list[Path]:
    return sorted(p for p in dst.rglob(".*") if ".tcpart" in p.name)


def test_killed_mid_tree_the_rerun_leaves_no_partial(tmp_path):
    src, dst, journal = tmp_path / "src", tmp_path / "dst", tmp_path / "j.db"
    make_tree(src, TreeSpec(files=600, max_size=400_000, large_files=3, large_size=3_000_000, seed=22))
    cmd = [sys.executable, "-m", "transfercore", "copy", "-r", str(src), str(dst), "--journal", str(journal),
           "--json", "--files", "4", "--whole-file-max", "256K", "--marker-bytes", "256K"]
    last: list = []
    # The first run is killed with files in flight, always; the second, started over
    # its partials, at its 120th file whatever it holds then (its batches may all be
    # done by the time their events are read).
    for kill_after, with_partials in ((40, True), (120, False)):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        # Batched small files finish fast and report in bursts: slowed, the copy is still
        # running when the kill point is read.
        small_pipe(proc.stdout)
        throttle = Throttle(proc.pid, duty=0.2, period=0.05)
        seen = 0
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                event = json.loads(line)
                assert event["event"] != "tree-done", "the copy finished before the kill"
                seen += event["event"] == "file-done"
                if seen < kill_after:
                    continue
                if not with_partials:
                    break
                # Frozen after each event from the kill point on, and killed at the first
                # freeze that finds a file in flight: however the machine schedules the
                # copy, what the kill leaves is what was seen.
                throttle.close()
                freeze(proc.pid)
                if partial_files(dst):
                    break
                thaw(proc.pid)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            throttle.close()
            proc.communicate(timeout=TIMEOUT)
        last = partial_files(dst)
        if with_partials:
            assert last, "the kill should leave partial files to clean"
    events, _ = copy(src, dst, journal, "--whole-file-max", "256K", "--marker-bytes", "256K")
    done = events[-1]
    # ... the rerun removes or finishes every one of them
    assert partial_files(dst) == []
    assert done["partials_removed"] + done["partials_resumed"] >= (1 if last else 0)
    identical(src, dst)


def test_verify_reads_back_every_file_and_repairs_what_metadata_cannot_see(finished):
    src, dst, journal = finished
    victims = [files(dst)[9], sorted((dst / "big").iterdir())[1]]
    for victim in victims:
        st = victim.stat()
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0xFF
        with open(victim, "r+b") as f:  # same size and time; only the bytes differ
            f.write(data)
        os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    # A metadata check cannot see it where the identity survives: make the
    # journal's record match again, as silent corruption on the device would.
    import sqlite3

    db = sqlite3.connect(journal)
    for victim in victims:
        st = victim.stat()
        rel = str(victim.relative_to(dst))
        db.execute("UPDATE campaign_entries SET dst=? WHERE rel=?",
                   (f"{st.st_size}:{st.st_mtime_ns}:{st.st_dev}:{st.st_ino}:{st.st_ctime_ns}", rel))
    db.commit()
    db.close()
    events, _ = copy(src, dst, journal)
    assert events[-1]["repaired"] == 0 and events[-1]["copied"] == 0  # invisible to a plain rerun
    events, _ = copy(src, dst, journal, "--verify")
    done = events[-1]
    differs = sorted(e["path"] for e in events if e["event"] == "verify-differs")
    assert differs == sorted(str(v.relative_to(dst)) for v in victims)
    assert done["differed"] == 2 and done["verified"] == done["files"] - 2 and done["copied"] == 2
    assert done["kept"] == done["files"] - 2
    identical(src, dst)
    events, _ = copy(src, dst, journal, "--verify")
    assert events[-1]["differed"] == 0 and events[-1]["verified"] == events[-1]["files"]


def test_a_large_file_killed_mid_copy_is_resumed_from_its_partial(tmp_path):
    import time

    src, dst, journal = tmp_path / "src", tmp_path / "dst", tmp_path / "j.db"
    (src / "d").mkdir(parents=True)
    size = 64 * 1024 * 1024
    (src / "d" / "big").write_bytes(os.urandom(1 << 20) * (size >> 20))
    (src / "d" / "small").write_text("small")
    cmd = [sys.executable, "-m", "transfercore", "copy", "-r", str(src), str(dst), "--journal", str(journal),
           "--json", "--whole-file-max", "1M", "--marker-bytes", "1M", "--streams", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    record = dst / "d" / ".big.tcpart.marker"
    try:
        deadline = time.monotonic() + 60
        while not record.exists():  # a durable marker: the partial is resumable
            assert proc.poll() is None, "the copy finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.002)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=TIMEOUT)
    assert not (dst / "d" / "big").exists()
    events, _ = copy(src, dst, journal, "--whole-file-max", "1M", "--marker-bytes", "1M")
    done = events[-1]
    assert done["partials_resumed"] == 1
    big = [e for e in events if e["event"] == "file-done" and e["path"] == "d/big"]
    assert big and 0 < big[0]["written"] < size, "the large file was sent again in full"
    assert partial_files(dst) == []
    identical(src, dst)


@pytest.mark.fuse
def test_after_a_power_cut_mid_file_the_rerun_resumes_and_leaves_no_partial(tmp_path):
    """On the power-loss file system: the cut keeps only what was synced, so
    the partial of a large file with a durable marker survives it; the rerun
    resumes it and nothing of the project's naming is left."""
    import time

    from transfercore.testing.powerloss import PowerLossFS, check_fuse

    check_fuse()  # FUSE missing fails the test, never skips it
    src, journal = tmp_path / "src", tmp_path / "j.db"  # the journal is off the lost disk
    (src / "d").mkdir(parents=True)
    size = 24 * 1024 * 1024
    (src / "d" / "big").write_bytes(os.urandom(1 << 20) * (size >> 20))
    for i in range(20):
        (src / "d" / f"small{i}").write_bytes(os.urandom(1000 + i))
    with PowerLossFS(tmp_path / "backing", tmp_path / "mnt", host_fsync=False) as fs:
        dst = Path(fs.mountpoint) / "dst"
        cmd = [sys.executable, "-m", "transfercore", "copy", "-r", str(src), str(dst), "--journal", str(journal),
               "--json", "--whole-file-max", "1M", "--marker-bytes", "1M", "--streams", "1", "--files", "1"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        record = dst / "d" / ".big.tcpart.marker"
        try:
            deadline = time.monotonic() + 60
            while not record.exists():
                assert proc.poll() is None, "the copy finished before the cut"
                assert time.monotonic() < deadline
                time.sleep(0.002)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # the machine stops here...
            proc.wait(timeout=TIMEOUT)
        fs.crash()  # ...and whatever was not synced is gone
        survived = [p.name for p in (dst / "d").iterdir() if ".tcpart" in p.name] if (dst / "d").exists() else []
        events, _ = copy(src, dst, journal, "--whole-file-max", "1M", "--marker-bytes", "1M")
        done = events[-1]
        assert partial_files(dst) == []
        if ".big.tcpart.marker" in survived:  # the record was synced before the cut (almost always)
            assert done["partials_resumed"] == 1
            big = [e for e in events if e["event"] == "file-done" and e["path"] == "d/big"]
            assert 0 < big[0]["written"] < size, "the large file was sent again in full"
        elif survived:
            assert done["partials_removed"] + done["partials_resumed"] >= 1
        fs.crash()  # the finished tree was durable
        identical(src, dst)

