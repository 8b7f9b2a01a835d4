"""The real ``transfercore copy -r`` in subprocesses: SIGKILLed (the whole
process group) at several points, run again, until the trees are identical.

After every kill, no file under its final name may differ from its source,
and the next run may write only files that were missing: a file already
published is kept (recorded complete) or proven equal by its checksum.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from transfercore.testing.throttle import Throttle, freeze, small_pipe, thaw
from transfercore.testing.trees import TreeSpec, make_tree, published

TIMEOUT = 120
SPEC = TreeSpec(files=1100, max_size=256 * 1024, large_files=4, large_size=3 * 1024 * 1024, seed=13)


def command(src, dst, journal, *extra):
    return [sys.executable, "-m", "transfercore", "copy", "-r", str(src), str(dst), "--journal", str(journal),
            "--json", "--files", "4", "--whole-file-max", "1M", "--marker-bytes", "1M", "--skip-specials", *extra]


def run_to_end(src, dst, journal, *extra, expect=0):
    proc = subprocess.run(command(src, dst, journal, *extra), capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == expect, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()], proc.stderr


def run_and_kill(src, dst, journal, *, after_files=None, on_event="file-done", mid_copy=False):
    """Start a copy and SIGKILL its process group once it printed ``after_files``
    events of kind ``on_event`` (the pipe's back-pressure keeps it close behind).

    With ``mid_copy``, from the kill point on the copy is frozen after each
    event and killed at the first freeze that finds regular files still to
    publish (the copy runs to its end if none is found): batches publish in
    bursts, and on a busy machine every batch may be done by the time the
    kill point is read, so what the kill leaves is what was seen.  Such a
    copy runs one batch at a time (``--files 1``): with four workers, the
    batches in flight held nearly all of the tree."""
    extra = ("--files", "1") if mid_copy else ()
    proc = subprocess.Popen(command(src, dst, journal, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    # Batched small files finish fast and report in bursts: slowed, the copy is still
    # running when the kill point is read.
    small_pipe(proc.stdout)
    throttle = Throttle(proc.pid, duty=0.2, period=0.05)
    events = []
    seen = 0
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line)
            events.append(event)
            if mid_copy and event["event"] == "tree-done":
                break
            assert event["event"] != "tree-done", "the copy finished before the kill point"
            seen += event["event"] == on_event
            if after_files is not None and seen < after_files:
                continue
            if not mid_copy:
                break
            throttle.close()
            freeze(proc.pid)
            if to_copy(src, dst):
                break
            thaw(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        throttle.close()
        proc.communicate(timeout=TIMEOUT)
    assert proc.returncode in ((-signal.SIGKILL, 0) if mid_copy else (-signal.SIGKILL,))
    return events


def to_copy(src, dst):
    """The regular files of ``src`` with no name yet in ``dst`` (not the FIFO, which is skipped;
    what is published is compared with the source by :func:`published`)."""
    return [rel for rel in (str(p.relative_to(src)) for p in src.rglob("*") if p.is_file() and not p.is_symlink())
            if not os.path.lexists(dst / rel)]


def check_rerun_wrote_only_missing(events, missing):
    sizes = {}
    for e in events:
        if e["event"] == "file-done" and e["written"]:
            assert e["path"] in missing, f"the rerun wrote {e['path']} again although it was published"
            sizes[e["path"]] = e["written"]
    done = [e for e in events if e["event"] == "tree-done"]
    if done:
        assert done[0]["bytes_written"] == sum(sizes.values())


def check_identical(src, dst):
    diff = subprocess.run(["diff", "-r", "--no-dereference", str(src), str(dst)], capture_output=True, text=True)
    assert diff.returncode == 0, diff.stdout[:2000]
    for dirpath, dirs, files in os.walk(src):
        for name in dirs + files:
            s = Path(dirpath) / name
            d = dst / s.relative_to(src)
            a, b = os.lstat(s), os.lstat(d)
            if not s.is_symlink():
                assert a.st_mode == b.st_mode, f"{d} has mode {oct(b.st_mode)}, not {oct(a.st_mode)}"
            assert a.st_mtime_ns == b.st_mtime_ns, f"{d} lost its modification time"
    hidden = [p for p in dst.rglob(".*") if ".tcpart" in p.name]
    assert hidden == [], f"partial files left behind: {hidden[:5]}"


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree") / "src"
    files, _ = make_tree(root, SPEC)
    assert files >= 1000
    os.mkfifo(root / "a-fifo")
    return root


def test_killed_at_several_points_then_resumed_ends_identical(source, tmp_path):
    dst, journal = tmp_path / "dst", tmp_path / "journal.db"
    # 1: killed as soon as the tree is announced (directories being made)
    run_and_kill(source, dst, journal, on_event="tree-start")
    kills = [60, 150, 40]
    changed = None
    landed_mid_copy = 0
    for i, k in enumerate(kills):
        present, missing = published(source, dst)
        left = to_copy(source, dst)
        if len(left) < 3:
            break  # nothing left to kill mid-copy
        # a third of what is left keeps the kill point mid-copy however far the last run got
        events = run_and_kill(source, dst, journal, after_files=max(1, min(k, len(left) // 3)), mid_copy=True)
        check_rerun_wrote_only_missing(events, missing)
        landed_mid_copy += bool(to_copy(source, dst))
        if i == 0:
            # a published file changed in the source: the next run copies it again
            changed = sorted(present)[0] if present else None
    assert landed_mid_copy, "the kills should land mid-copy"
    present, missing = published(source, dst)
    if changed:
        (source / changed).write_bytes(b"changed after it was copied")
        missing.add(changed)
    events, err = run_to_end(source, dst, journal)
    check_rerun_wrote_only_missing(events, missing)
    assert "skipped a-fifo" in err
    assert any(e["event"] == "skipped" and e["path"] == "a-fifo" for e in events)
    os.unlink(source / "a-fifo")
    try:
        check_identical(source, dst)
    finally:
        os.mkfifo(source / "a-fifo")
    assert os.readlink(dst / "link-outside") == os.readlink(source / "link-outside")
    # nothing left to do: a run writes nothing
    events, _ = run_to_end(source, dst, journal)
    done = events[-1]
    assert done["event"] == "tree-done" and done["copied"] == 0 and done["bytes_written"] == 0
    assert done["kept"] == done["files"] >= 1000
    status = subprocess.run([sys.executable, "-m", "transfercore", "status", "--json", "--journal", str(journal)],
                            capture_output=True, text=True, timeout=TIMEOUT)
    doc = json.loads(status.stdout)
    counts = doc["trees"][0]["counts"]
    assert counts["files"] == {"complete": done["files"]} and doc["trees"][0]["state"] == "done"


def test_failures_are_listed_and_the_rest_finishes(tmp_path):
    src = tmp_path / "src"
    make_tree(src, TreeSpec(files=40, seed=3))
    victim = sorted(p for p in src.rglob("*.dat"))[5]
    rel = victim.relative_to(src)
    dst = tmp_path / "dst"
    (dst / rel).mkdir(parents=True)  # a directory where the file belongs
    events, err = run_to_end(src, dst, tmp_path / "j.db", expect=1)
    assert "1 of the tree's entries failed" in err and str(rel) in err
    failed = [e for e in events if e["event"] == "file-error"]
    assert [e["path"] for e in failed] == [str(rel)]
    done = events[-1]
    assert done["failed"] == 1 and done["copied"] == done["files"] - 1
    others = [p for p in src.rglob("*.dat") if p != victim]
    assert len(others) == done["files"] - 1
    for p in others:
        assert (dst / p.relative_to(src)).read_bytes() == p.read_bytes()
    # fixed, the same command finishes it alone
    (dst / rel).rmdir()
    events, _ = run_to_end(src, dst, tmp_path / "j.db")
    assert [e["path"] for e in events if e["event"] == "file-done"] == [str(rel)]


def test_files_from_copies_only_the_listed_paths(tmp_path):
    src = tmp_path / "src"
    make_tree(src, TreeSpec(files=30, seed=5))
    chosen = sorted(str(p.relative_to(src)) for p in src.rglob("*.dat"))[::7]
    manifest = tmp_path / "list.txt"
    manifest.write_text("\n".join(chosen) + "\n")
    events, _ = run_to_end(src, tmp_path / "dst", tmp_path / "j.db", "--files-from", str(manifest))
    got = sorted(str(p.relative_to(tmp_path / "dst")) for p in (tmp_path / "dst").rglob("*.dat"))
    assert got == chosen
    for rel in chosen:
        assert (tmp_path / "dst" / rel).read_bytes() == (src / rel).read_bytes()


def cut_power(source, dst, journal, fs, k, env=None):
    """Copy until ``k`` files are reported done, then stop the machine and cut
    the power; check that nothing reported or recorded complete was lost."""
    from transfercore.campaign import CampaignStore, FileState, Kind

    _present, missing = published(source, dst) if dst.exists() else (set(), None)
    proc = subprocess.Popen(command(source, dst, journal), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env=env)
    events, done = [], 0
    assert proc.stdout is not None
    for line in proc.stdout:
        events.append(json.loads(line))
        assert events[-1]["event"] != "tree-done", "the copy finished before the power cut"
        if events[-1]["event"] == "file-done":
            done += 1
            if done >= k:
                break
    os.killpg(proc.pid, signal.SIGKILL)  # the machine stops here...
    proc.communicate(timeout=TIMEOUT)
    fs.crash()  # ...and whatever was not synced is gone
    if missing is not None:
        check_rerun_wrote_only_missing(events, missing)
    reported = {e["path"] for e in events if e["event"] == "file-done"}
    with CampaignStore(journal) as store:
        campaign = store.campaigns()[0]
        recorded = {r.entry.rel for r in store.records(campaign, kinds=(Kind.FILE,)) if r.state is FileState.COMPLETE}
    present, _ = published(source, dst)  # also: no final name differs from its source
    assert reported, "files should be reported done by the cut"
    assert recorded <= present, f"files the journal holds complete were lost: {sorted(recorded - present)[:5]}"
    assert reported <= present, f"files reported done were lost: {sorted(reported - present)[:5]}"
    assert reported <= recorded, f"files reported done were not recorded: {sorted(reported - recorded)[:5]}"


@pytest.fixture
def powerloss(tmp_path):
    from transfercore.testing.powerloss import PowerLossFS, check_fuse

    check_fuse()  # FUSE missing fails the test, never skips it
    fs = PowerLossFS(tmp_path / "backing", tmp_path / "mnt", host_fsync=False)
    fs.mount()
    try:
        yield fs
    finally:
        if fs.mounted:
            fs.crash(remount=False)


@pytest.mark.fuse
def test_power_cuts_keep_every_file_reported_or_recorded_complete(source, tmp_path, powerloss):
    dst, journal = Path(powerloss.mountpoint) / "dst", tmp_path / "journal.db"  # the journal is off the lost disk
    for k in (100, 250):
        cut_power(source, dst, journal, powerloss, k)
    _present, missing = published(source, dst)
    left = [p for p in dst.rglob(".*") if ".tcpart" in p.name]
    events, _ = run_to_end(source, dst, journal)
    check_rerun_wrote_only_missing(events, missing)
    # what the cuts left of the dead runs' partials is removed or resumed, and counted
    assert [p for p in dst.rglob(".*") if ".tcpart" in p.name] == []
    if left:
        assert events[-1]["partials_removed"] + events[-1]["partials_resumed"] >= 1
    powerloss.crash()  # the finished tree, its directories' times included, was durable
    os.unlink(source / "a-fifo")
    try:
        check_identical(source, dst)
    finally:
        os.mkfifo(source / "a-fifo")


@pytest.mark.fuse
def test_the_power_cut_check_catches_a_copy_that_never_syncs(source, tmp_path, powerloss):
    # fsync and fdatasync made no-ops in the copying process: files are
    # reported done but never reach the media, and the check must say so.
    hooks = tmp_path / "nosync"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text("import os\nos.fsync = os.fdatasync = lambda fd: None\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(hooks), os.environ.get("PYTHONPATH")])))
    with pytest.raises(AssertionError, match="were lost"):
        cut_power(source, Path(powerloss.mountpoint) / "dst", tmp_path / "journal.db", powerloss, 100, env)


def test_ctrl_c_records_what_finished_and_exits_130(source, tmp_path):
    dst, journal = tmp_path / "dst", tmp_path / "journal.db"
    proc = subprocess.Popen(command(source, dst, journal), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line)
            assert event["event"] != "tree-done", "the copy finished before the interrupt"
            if event["event"] == "file-done":
                done.append(event["path"])
                if len(done) >= 50:
                    proc.send_signal(signal.SIGINT)
                    break
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "run the same command again" in err
    present, missing = published(source, dst)
    assert set(done) <= present and missing
    status = subprocess.run([sys.executable, "-m", "transfercore", "status", "--journal", str(journal)],
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert "interrupted" in status.stdout and "files complete" in status.stdout
    events, _ = run_to_end(source, dst, journal)
    check_rerun_wrote_only_missing(events, missing)


def test_no_resume_checks_every_file_again_and_repairs_what_is_gone(tmp_path):
    src, dst, journal = tmp_path / "src", tmp_path / "dst", tmp_path / "j.db"
    make_tree(src, TreeSpec(files=40, seed=9))
    run_to_end(src, dst, journal)
    gone = sorted(dst.rglob("*.dat"))[3]
    gone.unlink()
    # the destination, not the journal, says what is there
    events, _ = run_to_end(src, dst, journal)
    copied = [e["path"] for e in events if e["event"] == "file-done" and not e["reused"]]
    assert copied == [str(gone.relative_to(dst))] and events[-1]["repaired"] == 1
    assert gone.read_bytes() == (src / gone.relative_to(dst)).read_bytes()
    events, _ = run_to_end(src, dst, journal, "--no-resume")
    copied = [e["path"] for e in events if e["event"] == "file-done" and not e["reused"]]
    assert copied == [] and events[-1]["kept"] == 40
