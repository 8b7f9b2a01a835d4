"""``transfercore copy -r --scheduler`` against a real Dask cluster on
127.0.0.1 (one ``dask scheduler``, three ``dask worker`` processes): a worker
SIGKILLed mid-campaign, the client SIGKILLed and run again, the scheduler
killed and started again.

Every write a worker makes is logged before it happens
(:mod:`transfercore.testing.dask_write_log`), so the bytes written again
after a death are measured, the dead worker's included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from transfercore.registry import open_location
from transfercore.testing.dask_cluster import DaskCluster, writes
from transfercore.testing.jsoncopy import JsonCopy
from transfercore.testing.throttle import Throttle
from transfercore.testing.trees import TreeSpec, make_tree

TIMEOUT = 90.0
FILES = 2000
LARGE = 4
LARGE_SIZE = 8 * 1024 * 1024
MARKER = 1024 * 1024
BLOCK = 256 * 1024
STREAMS = 2
#: What a death may cost a large file: the unmarked bytes the engine lets run
#: ahead of the last marker (``--marker-bytes``) plus the blocks in flight.
LARGE_BOUND = MARKER + STREAMS * BLOCK


def make_source(root: Path) -> list[str]:
    """2,000 small files and a few large ones placed about 40 % into the path
    order, so that large files are being written when a third is published."""
    make_tree(root, TreeSpec(files=FILES, max_size=16 * 1024, seed=14))
    rels = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    dirs = sorted({str(Path(r).parent) for r in rels})
    best = min(dirs, key=lambda d: abs(sum(r < d + "x/" for r in rels) / len(rels) - 0.4))
    big = root / (best + "x")
    big.mkdir()
    for i in range(LARGE):
        (big / f"large{i}.bin").write_bytes(os.urandom(LARGE_SIZE))
    return [str((big / f"large{i}.bin").relative_to(root)) for i in range(LARGE)]


def command(src: Path, dst: Path, journal: Path, scheduler: str) -> list[str]:
    return [sys.executable, "-m", "transfercore", "copy", "-r", str(src), str(dst), "--journal", str(journal),
            "--json", "--scheduler", scheduler, "--whole-file-max", "1M", "--marker-bytes", str(MARKER),
            "--marker-interval", "0", "--block-size", str(BLOCK), "--streams", str(STREAMS)]


def check_identical(src: Path, dst: Path) -> None:
    diff = subprocess.run(["diff", "-r", "--no-dereference", str(src), str(dst)], capture_output=True, text=True)
    assert diff.returncode == 0, diff.stdout[:2000]
    for dirpath, dirs, files in os.walk(src):
        for name in dirs + files:
            s = Path(dirpath) / name
            a, b = os.lstat(s), os.lstat(dst / s.relative_to(src))
            assert a.st_mtime_ns == b.st_mtime_ns, f"{s.relative_to(src)} lost its modification time"
    hidden = [p for p in dst.rglob(".*") if ".tcpart" in p.name]
    assert hidden == [], f"partial files left behind: {hidden[:5]}"


@pytest.fixture
def cluster(tmp_path):
    c = DaskCluster(tmp_path / "cluster", workers=3, nthreads=2)
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask") / "src"
    large = make_source(root)
    return root, large


def test_a_worker_killed_mid_campaign_costs_at_most_one_marker_interval_per_file_in_flight(cluster, source, tmp_path):
    src, large = source
    dst, journal = tmp_path / "dst", tmp_path / "journal.db"
    driver = open_location(str(dst)).driver
    client = JsonCopy(command(src, dst, journal, cluster.address), timeout=TIMEOUT)
    victim: dict[str, object] = {}

    def large_file_marked_on_a_worker() -> bool:
        # A third published, and a large file with a durable marker being written by a live worker.
        if client.published < FILES // 3:
            return False
        log = writes(cluster.write_log)
        live = {w.pid: w for w in cluster.live_workers()}
        for rel in large:
            path = str(dst / rel)
            marker = driver.partial(path) if (dst / rel).parent.exists() else None
            pids = [pid for pid, _, _ in log.get(path, [])]
            if marker and pids and pids[-1] in live and not (dst / rel).exists():
                victim.update(pid=pids[-1], proc=live[pids[-1]], path=path, marker=marker,
                              published=client.published)
                return True
        return False

    # The workers slowed (SIGSTOP/SIGCONT), so the copy is still running when a
    # large file is seen in flight: unslowed, a quiet machine can finish first.
    throttles = [Throttle(w.pid, duty=0.3, period=0.05) for w in cluster.live_workers()]
    try:
        client.wait_until(large_file_marked_on_a_worker)
        cluster.kill(victim["proc"])  # type: ignore[arg-type]
    finally:
        for throttle in throttles:
            throttle.close()
    code, err = client.finish()
    assert code == 0, err + cluster.logs()
    check_identical(src, dst)

    dead = victim["pid"]
    sizes = {str(p): p.stat().st_size for p in dst.rglob("*") if p.is_file() and not p.is_symlink()}
    rewritten: dict[str, int] = {}
    for path, ws in writes(cluster.write_log).items():
        assert path in sizes, f"a write to {path}, which is not in the tree"
        extra = sum(n for _, _, n in ws) - sizes[path]
        if extra > 0:
            rewritten[path] = extra
            # Only a file that was in flight on the dead worker is written twice ...
            assert dead in {pid for pid, _, _ in ws}, f"{path} was written again without a worker dying on it"
            # ... and it costs at most one marker interval (a small file is one whole unit).
            bound = LARGE_BOUND if sizes[path] > 1024 * 1024 else sizes[path]
            assert extra <= bound, f"{path}: {extra} bytes written again, more than {bound}"
    path = victim["path"]
    retry = sum(n for pid, _, n in writes(cluster.write_log)[path] if pid != dead)
    by_dead = sum(n for pid, _, n in writes(cluster.write_log)[path] if pid == dead)
    # Under load the victim may finish every write (and its sync) between the check and the kill:
    # then its retry rightly finds all bytes durable and writes none.
    assert retry > 0 or by_dead >= LARGE_SIZE, f"{path} was published without the bytes its dead writer left out"
    assert retry <= LARGE_SIZE - victim["marker"].total(), (  # type: ignore[attr-defined]
        f"{path} was not resumed from its durable marker {victim['marker']}: the retry wrote {retry} bytes")
    done = [e for e in client.events if e["event"] == "tree-done"][0]
    assert done["failed"] == 0 and done["files"] == FILES + LARGE
    print(f"\nworker killed after {victim['published']} files published; {len(rewritten)} files written again, "
          f"{sum(rewritten.values())} bytes; the marked large file resumed from {victim['marker']} "
          f"and the retry wrote {retry} of {LARGE_SIZE} bytes")


def test_a_client_killed_mid_campaign_finishes_when_run_again(cluster, source, tmp_path):
    src, _ = source
    dst, journal = tmp_path / "dst", tmp_path / "journal.db"
    argv = command(src, dst, journal, cluster.address)
    client = JsonCopy(argv, timeout=TIMEOUT)
    client.wait_until(lambda: client.published >= FILES // 3)
    client.kill()
    assert client.proc.returncode == -signal.SIGKILL
    before = {e["path"] for e in client.events if e["event"] == "file-done"}
    again = JsonCopy(argv, timeout=TIMEOUT)
    code, err = again.finish()
    assert code == 0, err + cluster.logs()
    check_identical(src, dst)
    start = [e for e in again.events if e["event"] == "tree-start"][0]
    assert start["files_done"] > 0, "the rerun kept nothing the first run recorded"
    # Published before the kill: recorded complete, or found published and proven equal; never written again.
    again_written = {e["path"] for e in again.events if e["event"] == "file-done" and e["written"]}
    assert not before & again_written, f"the rerun wrote published files again: {sorted(before & again_written)[:5]}"
    done = [e for e in again.events if e["event"] == "tree-done"][0]
    assert done["failed"] == 0 and done["files"] == FILES + LARGE
    assert done["kept"] >= len(before)


def test_a_lost_scheduler_is_a_clear_error_and_the_campaign_resumes(cluster, source, tmp_path):
    src, _ = source
    dst, journal = tmp_path / "dst", tmp_path / "journal.db"
    argv = command(src, dst, journal, cluster.address)
    client = JsonCopy(argv, timeout=TIMEOUT)
    client.wait_until(lambda: client.published >= FILES // 3)
    assert cluster.scheduler is not None
    cluster.kill(cluster.scheduler)
    started = time.monotonic()
    code, err = client.finish(timeout=60)
    assert code == 1, err
    assert "lost the connection to the Dask scheduler" in err and "run the same command" in err, err
    assert time.monotonic() - started < 30
    # The same cluster address again: scheduler and workers restarted.
    cluster.stop()
    cluster.start()
    again = JsonCopy(argv, timeout=TIMEOUT)
    code, err = again.finish()
    assert code == 0, err + cluster.logs()
    check_identical(src, dst)
    done = [e for e in again.events if e["event"] == "tree-done"][0]
    assert done["failed"] == 0 and done["kept"] >= FILES // 3
