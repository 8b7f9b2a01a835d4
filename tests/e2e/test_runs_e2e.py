"""The real ``transfercore copy`` in subprocesses: killed runs, concurrent runs, damaged journals, reruns."""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys

import pytest

from transfercore.registry import open_location
from transfercore.testing.throttle import Throttle

SIZE = 8 * 1024 * 1024


def cli(*args):
    return [sys.executable, "-m", "transfercore", *args]


@pytest.fixture
def setup(tmp_path):
    data = random.Random(11).randbytes(SIZE)
    store = tmp_path / "store"
    store.mkdir()
    writer = open_location(f"mock://src/obj?dir={store}").driver.open_write("/obj", SIZE)
    writer.write(0, data)
    writer.complete()
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    return data, f"mock://src/obj?dir={store}", env, tmp_path


def copy_args(src, dst, *extra):
    return cli("copy", src, dst, "--json", "--streams", "2", "--block-size", "256K",
               "--marker-bytes", "1M", "--marker-interval", "0", *extra)


def start(src, dst, env, *extra):
    return subprocess.Popen(copy_args(src, dst, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def until_marker(proc):
    for line in proc.stdout:
        event = json.loads(line)
        if event["event"] == "marker" and event["durable_bytes"] > 0:
            return event
    raise AssertionError(f"no marker before the end: {proc.stderr.read()}")


def killed_after_a_marker(src, dst, env):
    proc = start(f"{src}&slow=0.03", dst, env)
    # slowed from outside too, so that a test delayed on a busy machine still kills it mid-copy
    throttle = Throttle(proc.pid, duty=0.2, period=0.05)
    try:
        marker = until_marker(proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        throttle.close()
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    proc.stdout.close()
    proc.stderr.close()
    return marker


def run(args, env):
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)


def events(out):
    return [json.loads(x) for x in out.splitlines() if x.strip()]


def test_status_after_sigkill_shows_the_entry_interrupted(setup):
    data, src, env, tmp = setup
    marker = killed_after_a_marker(src, str(tmp / "out.bin"), env)
    status = run(cli("status", "--json"), env)
    (entry,) = json.loads(status.stdout)["files"]
    assert entry["recorded_state"] == "running" and entry["state"] == "interrupted"
    assert entry["durable_bytes"] >= marker["durable_bytes"]
    text = run(cli("status"), env).stdout
    assert "interrupted" in text and f"process {entry['owner_pid']} ended without recording it" in text
    assert list(tmp.glob(".out.bin.*"))
    assert run(cli("status", "--state", "interrupted", "--json"), env).stdout.count('"id"') == 1
    assert json.loads(run(cli("status", "--state", "running", "--json"), env).stdout)["files"] == []
    # discard reaches the partial through the driver and forgets the entry
    gone = run(cli("status", "--discard", str(entry["id"])), env)
    assert gone.returncode == 0 and "discarded the partial copy" in gone.stdout
    assert not list(tmp.glob(".out.bin.*"))
    assert json.loads(run(cli("status", "--json"), env).stdout)["files"] == []


def test_two_concurrent_runs_one_succeeds_one_is_refused_naming_the_other(setup):
    data, src, env, tmp = setup
    dst = tmp / "out.bin"
    first = start(f"{src}&slow=0.02", str(dst), env)
    until_marker(first)
    # Held still (and holding its lock) while the second run tries, however slow this machine is.
    first.send_signal(signal.SIGSTOP)
    try:
        second = run(copy_args(f"{src}&slow=0.02", str(dst)), env)
    finally:
        first.send_signal(signal.SIGCONT)
    rest, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert second.returncode == 1
    (line,) = second.stderr.splitlines()
    assert f"is being written by another transfercore run: process {first.pid}" in line
    assert "wait for that run to finish" in line
    assert dst.read_bytes() == data
    assert not list(tmp.glob(".out.bin.*"))  # no partial or stale record left behind
    (entry,) = json.loads(run(cli("status", "--json"), env).stdout)["files"]
    assert entry["state"] == "done"


def test_rerun_of_a_finished_copy_moves_no_bytes_unless_forced(setup):
    data, src, env, tmp = setup
    dst = tmp / "out.bin"
    assert run(copy_args(src, str(dst)), env).returncode == 0
    before = os.stat(dst)
    again = run(copy_args(src, str(dst)), env)
    assert again.returncode == 0, again.stderr
    (event,) = events(again.stdout)
    assert event["event"] == "up-to-date" and event["transfer_id"] == 1 and event["schema"] == 1
    assert os.stat(dst).st_mtime_ns == before.st_mtime_ns and os.stat(dst).st_ino == before.st_ino
    plain = run(cli("copy", src, str(dst)), env)
    assert "up to date" in plain.stdout and "--force copies again" in plain.stdout
    forced = run(copy_args(src, str(dst), "--force"), env)
    kinds = [e["event"] for e in events(forced.stdout)]
    assert "--force" in [e for e in events(forced.stdout) if e["event"] == "restart"][0]["reason"]
    assert kinds[-1] == "done" and [e for e in events(forced.stdout) if e["event"] == "done"][0]["bytes_sent"] == SIZE
    # A destination changed since is sent again, saying why.
    with open(dst, "r+b") as f:
        f.write(b"changed")
    changed = run(cli("copy", src, str(dst)), env)
    assert "starting from zero: the destination changed since the finished copy" in changed.stdout
    assert dst.read_bytes() == data


def test_a_run_that_failed_before_any_marker_says_why_the_next_starts_from_zero(setup):
    data, src, env, tmp = setup
    first = run(copy_args(src, f"mock://dst/o?dir={tmp / 'store'}&fail_after=300K&fail_durable=1"), env)
    assert first.returncode == 1
    again = run(cli("copy", src, f"mock://dst/o?dir={tmp / 'store'}"), env)
    assert again.returncode == 0, again.stderr
    assert "starting from zero: the previous run failed before any byte was durable: injected fault" in again.stdout


def _empty_journal(journal):
    for suffix in ("-wal", "-shm"):
        if os.path.exists(f"{journal}{suffix}"):
            os.remove(f"{journal}{suffix}")
    open(journal, "w").close()


def _garbage_wal(journal):
    wal = f"{journal}-wal"
    size = os.path.getsize(wal)
    with open(wal, "wb") as f:
        f.write(random.Random(5).randbytes(size))


def _truncated_midway(journal):
    # put every row into the main file first, then cut it
    with sqlite3.connect(journal) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(journal, "r+b") as f:
        f.truncate(os.path.getsize(journal) // 2 + 100)


@pytest.mark.parametrize("damage", [_empty_journal, _garbage_wal, _truncated_midway],
                         ids=["empty", "garbage-wal", "truncated"])
def test_a_damaged_journal_still_resumes_the_destinations_durable_partial(setup, damage):
    data, src, env, tmp = setup
    dst = tmp / "out.bin"
    marker = killed_after_a_marker(src, str(dst), env)
    journal = tmp / "state" / "transfercore" / "journal.sqlite"
    damage(journal)
    again = run(copy_args(src, str(dst)), env)
    assert again.returncode == 0, again.stderr
    evs = events(again.stdout)
    (resumed,) = [e for e in evs if e["event"] == "resumed"]
    assert resumed["bytes"] >= marker["durable_bytes"] and "resume record" in resumed["note"]
    (done,) = [e for e in evs if e["event"] == "done"]
    assert done["bytes_sent"] == SIZE - resumed["bytes"]
    assert dst.read_bytes() == data
    if damage is _truncated_midway:
        assert "was found damaged" in again.stderr and "moved to" in again.stderr
        assert list(journal.parent.glob("journal.sqlite.damaged-*"))


def test_a_copy_piped_into_head_finishes_and_exits_0(setup):
    data, src, env, tmp = setup
    dst = tmp / "out.bin"
    proc = subprocess.Popen(copy_args(f"{src}&slow=0.01", str(dst)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    assert json.loads(proc.stdout.readline())["event"] == "start"
    proc.stdout.close()  # as `| head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 0, err
    assert err == "" and dst.read_bytes() == data
