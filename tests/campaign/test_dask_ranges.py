"""``transfercore copy BIG DST --scheduler`` against a real Dask cluster on
127.0.0.1 (one ``dask scheduler``, three ``dask worker`` processes): one 4 GiB
file cut into 64 MiB ranges, each written by its own range writer on a
worker, markers every 8 MiB.

One copy, two deaths, so that the 4 GiB are written once in all:

* the client SIGKILLed once two ranges are durable, and the tasks it left
  running ended: a record claiming more than the partial file holds (the
  file cut short meanwhile) is refused;
* the same command run again, and one worker SIGKILLed once some of the
  bytes it wrote in this run are durable and others are not: the copy ends
  with exit 0, identical (``cmp``, besides the copy's own CRC32C), the rerun
  writes no byte that was durable when it started, and beyond what it had
  to write it writes at most one marker interval (plus the block in flight)
  per range the dead worker had in flight.

Every write a worker makes is logged before it happens
(:mod:`transfercore.testing.dask_write_log`), so the bytes written are
measured, the dead worker's included.  The workers run at full speed: at
4 GiB the copy lasts long enough for both kills to land mid-copy.  The
source is made in one pass from one random 64 MiB buffer whose 1 MiB blocks
are each stamped with their index in the file, so no two blocks (hence no
two ranges) are alike and a range written at the wrong place is caught.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from transfercore.errors import TransferCoreError
from transfercore.ranges import RangeSet
from transfercore.registry import open_location
from transfercore.testing.dask_cluster import DaskCluster, writes
from transfercore.testing.jsoncopy import JsonCopy

TIMEOUT = 180.0
MiB = 1024 * 1024
SIZE = 4 * 1024 * MiB
RANGE = 64 * MiB
MARKER = 8 * MiB
BLOCK = 1 * MiB
NTHREADS = 2
#: What a dead worker may cost: per range it had in flight, the bytes written
#: since its last durable point (under one marker interval) plus the block whose
#: write was logged (logging comes first) or under way when it died.
BOUND = NTHREADS * (MARKER + BLOCK)


def command(src: Path, dst: Path, scheduler: str) -> list[str]:
    return [sys.executable, "-m", "transfercore", "copy", str(src), str(dst), "--json", "--scheduler", scheduler,
            "--range-size", str(RANGE), "--marker-bytes", str(MARKER), "--block-size", str(BLOCK)]


@pytest.fixture
def cluster(tmp_path):
    c = DaskCluster(tmp_path / "cluster", workers=3, nthreads=NTHREADS)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def make_source(path: Path, size: int) -> None:
    """``size`` bytes, every 1 MiB block unlike any other: one random buffer
    written over and over, each block's first 8 bytes its index in the file."""
    chunk = bytearray(os.urandom(64 * MiB))
    with open(path, "wb") as f:
        for at in range(0, size, len(chunk)):
            for block in range(0, len(chunk), MiB):
                struct.pack_into("<Q", chunk, block, (at + block) // MiB)
            f.write(memoryview(chunk)[: size - at])


@pytest.fixture
def source(tmp_path) -> Path:
    path = tmp_path / "src" / "big.bin"
    path.parent.mkdir()
    try:
        make_source(path, SIZE)
        yield path
    finally:
        path.unlink(missing_ok=True)


def durable_now(dst: Path) -> RangeSet:
    try:
        return open_location(str(dst)).driver.durable_ranges(str(dst), SIZE)
    except TransferCoreError:
        return RangeSet()  # not started yet


def logged_since(log: Path, mark: int, dst: Path) -> list[tuple[int, int, int]]:
    """The (pid, offset, length) of every write to ``dst`` logged past byte ``mark`` of the log."""
    out = []
    with open(log, "rb") as f:
        f.seek(mark)
        for line in f.read().decode().splitlines():
            pid, offset, length, path = line.split(" ", 3)
            if path == str(dst) and int(length):
                out.append((int(pid), int(offset), int(length)))
    return out


def union(log: list[tuple[int, int, int]], pid: int | None = None) -> RangeSet:
    out = RangeSet()
    for p, offset, length in log:
        if pid is None or p == pid:
            out = out | RangeSet.span(offset, offset + length)
    return out


def check_identical(src: Path, dst: Path) -> None:
    assert dst.stat().st_size == SIZE
    subprocess.run(["cmp", str(src), str(dst)], check=True)
    hidden = [p.name for p in dst.parent.iterdir() if ".tcpart" in p.name]
    assert hidden == [], f"range state left behind: {hidden}"


def executing(cluster: DaskCluster) -> int:
    from distributed import Client as DaskClient

    with DaskClient(cluster.address, timeout=30, set_as_default=False) as c:
        found = c.run(lambda dask_worker: len(dask_worker.state.executing))
    return sum(found.values())


def test_4gib_by_ranges_survives_a_client_kill_then_a_worker_kill(cluster, source, tmp_path):
    dst = tmp_path / "out" / "big.bin"
    dst.parent.mkdir()
    argv = command(source, dst, cluster.address)
    began = time.monotonic()
    try:
        # 1. The client dies once two ranges are durable.
        first = JsonCopy(argv, timeout=TIMEOUT)
        first.wait_until(lambda: durable_now(dst).total() >= 2 * RANGE)
        first.kill()
        assert first.proc.returncode == -signal.SIGKILL
        # The tasks running when the client died go on to their ends on the
        # workers (Dask does not interrupt a running task); wait for them, bounded.
        deadline = time.monotonic() + TIMEOUT
        while executing(cluster):
            assert time.monotonic() < deadline, "the dead client's tasks never finished"
            time.sleep(0.1)
        found = durable_now(dst)
        assert found and found.total() <= SIZE // 2, f"the client kill came too late: {found}"

        # 2. The storage loses the end of the partial file (cut short by
        # something else): the records claiming bytes past its new end are refused.
        (partial,) = dst.parent.glob(".big.bin.*.tcpart")
        cut = found.end() - 1000
        os.truncate(partial, cut)
        before = durable_now(dst)
        assert before.end() <= cut and before.contains(found - RangeSet.span(found.ranges[-1].start, found.end())), (
            f"after the file was cut at {cut}, the union read back is {before} (was {found})")

        # 3. The same command again; the worker rewriting the range that was
        # cut dies once some of the bytes it wrote there in this run are
        # durable and others are not.  The task that takes the range over
        # starts after other ranges have grown the file past the cut again,
        # so it must not believe the records refused at the start.
        mark = cluster.write_log.stat().st_size
        victim: dict[str, object] = {}
        cut_range = RangeSet.span(cut // RANGE * RANGE, (cut // RANGE + 1) * RANGE)
        again = JsonCopy(argv, timeout=TIMEOUT)

        def worker_with_durable_and_unfinished_bytes_in_the_cut_range() -> bool:
            log = logged_since(cluster.write_log, mark, dst)
            if not log:
                return False
            durable = durable_now(dst)
            for w in cluster.live_workers():
                mine = union(log, w.pid) & cut_range
                if mine & durable and mine - durable:
                    victim.update(pid=w.pid, proc=w, durable=durable)
                    return True
            return False

        again.wait_until(worker_with_durable_and_unfinished_bytes_in_the_cut_range)
        cluster.kill(victim["proc"])  # type: ignore[arg-type]
        code, err = again.finish()
        assert code == 0, err + cluster.logs()
        check_identical(source, dst)
        print(f"\n4 GiB: two runs, the checks included, in {time.monotonic() - began:.1f} s")

        planned = [e for e in again.events if e["event"] == "ranges-planned"][0]
        assert planned["durable_bytes"] == before.total()
        rerun = logged_since(cluster.write_log, mark, dst)
        wrote = union(rerun)
        assert not wrote & before, f"the rerun wrote durable bytes again: {wrote & before}"
        assert wrote | before == RangeSet.span(0, SIZE)
        total = sum(n for _, _, n in rerun)
        twice = total - (SIZE - before.total())
        dead = victim["pid"]
        by_dead = sum(n for p, _, n in rerun if p == dead)
        assert by_dead > 0
        assert 0 <= twice <= BOUND, f"{twice} bytes written twice, more than {BOUND}"
        # Every byte some writer made durable before the worker died was written once only.
        counts: dict[tuple[int, int], int] = {}
        for _, offset, n in rerun:
            counts[(offset, n)] = counts.get((offset, n), 0) + 1
        for (offset, n), times in counts.items():
            if times > 1:
                assert not (RangeSet.span(offset, offset + n) & victim["durable"]), (  # type: ignore[operator]
                    f"{offset}+{n}, durable before the kill, was written {times} times")
        done = [e for e in again.events if e["event"] == "range-done"]
        assert len(done) == SIZE // RANGE
        # The task that took the cut range over resumed what the dead worker had made durable there.
        (took_over,) = [e for e in done if e["start"] == cut_range.ranges[0].start]
        assert took_over["resumed"] >= (victim["durable"] & cut_range).total() > 0  # type: ignore[operator]
        complete = [e for e in again.events if e["event"] == "complete"][0]
        assert complete["resumed_bytes"] == before.total()
        # The dead worker's durable bytes are resumed, not written, by the task that took its range over.
        assert SIZE - before.total() - by_dead <= complete["bytes_written"] <= SIZE - before.total()
        print(f"client killed with {found.total()} bytes durable, {before.total()} left after the cut; "
              f"worker {dead} killed with {victim['durable']} durable, having written {by_dead} bytes "
              f"in the rerun; {twice} bytes written twice (bound {BOUND})")
    finally:
        for p in dst.parent.iterdir():
            p.unlink(missing_ok=True)  # the dead client's tasks may still be renaming records


def test_a_tree_campaign_spreads_the_ranges_of_its_large_file_over_the_workers(cluster, tmp_path):
    src = tmp_path / "tree"
    (src / "d").mkdir(parents=True)
    big = src / "d" / "big.bin"
    big.write_bytes(os.urandom(48 * 1024 * 1024))
    for i in range(20):
        (src / f"small{i}.txt").write_bytes(os.urandom(1000 + i))
    dst = tmp_path / "out"
    argv = [sys.executable, "-m", "transfercore", "copy", "-r", str(src), str(dst), "--json", "--journal",
            str(tmp_path / "j.db"), "--scheduler", cluster.address, "--whole-file-max", "1M",
            "--ranges-above", "16M", "--range-size", "4M"]
    client = JsonCopy(argv, timeout=TIMEOUT)
    code, err = client.finish()
    assert code == 0, err + cluster.logs()
    subprocess.run(["diff", "-r", str(src), str(dst)], check=True)
    assert [p.name for p in (dst / "d").iterdir()] == ["big.bin"]
    log = writes(cluster.write_log)[str(dst / "d" / "big.bin")]
    pids = {pid for pid, _, _ in log}
    assert len(pids) >= 2, f"the large file's ranges all ran on one worker ({pids})"
    assert sum(n for _, _, n in log) == big.stat().st_size  # each byte written once
