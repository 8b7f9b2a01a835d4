"""``transfercore copy BIG DST --scheduler`` against a real Dask cluster on
127.0.0.1 (one ``dask scheduler``, three ``dask worker`` processes): one file
cut into ranges, each written by its own range writer on a worker.

* a worker SIGKILLed after some of its ranges are durable: the copy ends
  with exit 0, identical, and the bytes written twice are at most one marker
  interval (plus the block in flight) per range the dead worker had in flight;
* the client SIGKILLed and run again: a record claiming more than the
  partial file holds (the file cut short meanwhile) is refused, and the rerun
  writes no byte that was durable when it started.

Every write a worker makes is logged before it happens
(:mod:`transfercore.testing.dask_write_log`), so the bytes written are
measured, the dead worker's included.  The file is 128 MiB, not the 4 GiB of
the benchmark (``benchmarks/bench_ranges.py``): the workers are slowed
(SIGSTOP/SIGCONT) so the kill lands mid-copy, and the test stays within
about 30 s on a small shared machine; what is checked does not depend on
the size.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from transfercore.errors import TransferCoreError
from transfercore.ranges import RangeSet
from transfercore.registry import open_location
from transfercore.testing.dask_cluster import DaskCluster, writes
from transfercore.testing.throttle import Throttle

TIMEOUT = 120.0
SIZE = 128 * 1024 * 1024
RANGE = 8 * 1024 * 1024
MARKER = 1024 * 1024
BLOCK = 256 * 1024
NTHREADS = 2
#: What a dead worker may cost: per range it had in flight, the bytes written
#: since its last durable point (under one marker interval) plus the block whose
#: write was logged (logging comes first) or under way when it died.
BOUND = NTHREADS * (MARKER + BLOCK)


def command(src: Path, dst: Path, scheduler: str) -> list[str]:
    return [sys.executable, "-m", "transfercore", "copy", str(src), str(dst), "--json", "--scheduler", scheduler,
            "--range-size", str(RANGE), "--marker-bytes", str(MARKER), "--block-size", str(BLOCK)]


class Client:
    """The copy command, its JSON events read as they come."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.events: list[dict] = []
        self._err: list[str] = []
        self._readers = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=lambda: self._err.extend(self.proc.stderr or ()), daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def wait_until(self, what, timeout: float = TIMEOUT) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not what():
            assert self.proc.poll() is None, f"the copy ended ({self.proc.returncode}) before the kill point"
            assert time.monotonic() < deadline, "the kill point never came"
            time.sleep(0.02)

    def finish(self, timeout: float = TIMEOUT) -> tuple[int, str]:
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        for reader in self._readers:
            reader.join(timeout=30)
        return self.proc.returncode, "".join(self._err)

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.finish()


@pytest.fixture
def cluster(tmp_path):
    c = DaskCluster(tmp_path / "cluster", workers=3, nthreads=NTHREADS)
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ranges") / "big.bin"
    with open(path, "wb") as f:
        for _ in range(SIZE // (8 * 1024 * 1024)):
            f.write(os.urandom(8 * 1024 * 1024))
    return path


def durable_now(dst: Path) -> RangeSet:
    try:
        return open_location(str(dst)).driver.durable_ranges(str(dst), SIZE)
    except TransferCoreError:
        return RangeSet()  # not started yet


def written_by(log: list[tuple[int, int, int]], pid: int) -> RangeSet:
    out = RangeSet()
    for p, offset, length in log:
        if p == pid and length:
            out = out | RangeSet.span(offset, offset + length)
    return out


def check_identical(src: Path, dst: Path) -> None:
    assert dst.stat().st_size == SIZE
    subprocess.run(["cmp", str(src), str(dst)], check=True)
    hidden = [p.name for p in dst.parent.iterdir() if ".tcpart" in p.name]
    assert hidden == [], f"range state left behind: {hidden}"


def throttled(cluster: DaskCluster, duty: float) -> list[Throttle]:
    return [Throttle(w.pid, duty) for w in cluster.live_workers()]


def test_a_worker_killed_mid_range_costs_at_most_one_marker_interval_per_range_in_flight(cluster, source, tmp_path):
    dst = tmp_path / "out" / "big.bin"
    dst.parent.mkdir()
    throttles = throttled(cluster, 0.35)
    victim: dict[str, object] = {}
    try:
        client = Client(command(source, dst, cluster.address))

        def worker_with_durable_and_unfinished_ranges() -> bool:
            durable = durable_now(dst)
            if not durable:
                return False
            log = writes(cluster.write_log).get(str(dst), [])
            for w in cluster.live_workers():
                mine = written_by(log, w.pid)
                if mine & durable and mine - durable:
                    victim.update(pid=w.pid, proc=w, durable=durable)
                    return True
            return False

        client.wait_until(worker_with_durable_and_unfinished_ranges)
        cluster.kill(victim["proc"])  # type: ignore[arg-type]
    finally:
        for t in throttles:
            t.close()
    code, err = client.finish()
    assert code == 0, err + cluster.logs()
    check_identical(source, dst)

    log = writes(cluster.write_log)[str(dst)]
    total = sum(n for _, _, n in log)
    again = total - SIZE
    dead = victim["pid"]
    by_dead = sum(n for p, _, n in log if p == dead)
    assert by_dead > 0
    assert 0 <= again <= BOUND, f"{again} bytes written twice, more than {BOUND}"
    # Every byte some writer made durable before the kill was written once only.
    counts: dict[tuple[int, int], int] = {}
    for _, offset, n in log:
        counts[(offset, n)] = counts.get((offset, n), 0) + 1
    for (offset, n), times in counts.items():
        if times > 1:
            assert not (RangeSet.span(offset, offset + n) & victim["durable"]), (  # type: ignore[operator]
                f"{offset}+{n}, durable before the kill, was written {times} times")
    done = [e for e in client.events if e["event"] == "range-done"]
    assert len(done) == SIZE // RANGE
    assert any(e["resumed"] for e in done) or again == 0 or by_dead >= SIZE // 3
    print(f"\nworker {dead} killed with {victim['durable']} durable; it had written {by_dead} bytes; "
          f"{again} bytes written twice (bound {BOUND})")


def executing(cluster: DaskCluster) -> int:
    from distributed import Client as DaskClient

    with DaskClient(cluster.address, timeout=30, set_as_default=False) as c:
        found = c.run(lambda dask_worker: len(dask_worker.state.executing))
    return sum(found.values())


def test_a_client_killed_and_run_again_rewrites_no_durable_range(cluster, source, tmp_path):
    dst = tmp_path / "out" / "big.bin"
    dst.parent.mkdir()
    argv = command(source, dst, cluster.address)
    throttles = throttled(cluster, 0.35)
    try:
        client = Client(argv)
        client.wait_until(lambda: durable_now(dst).total() >= 2 * RANGE)
        client.kill()
        assert client.proc.returncode == -signal.SIGKILL
    finally:
        for t in throttles:
            t.close()
    # The tasks running when the client died go on to their ends on the workers
    # (Dask does not interrupt a running task); wait for them, bounded.
    deadline = time.monotonic() + TIMEOUT
    while executing(cluster):
        assert time.monotonic() < deadline, "the dead client's tasks never finished"
        time.sleep(0.1)
    found = durable_now(dst)
    assert found and found != RangeSet.span(0, SIZE), f"the kill came too late or too early: {found}"
    # The storage loses the end of the partial file (cut short by something
    # else): the records claiming bytes past its new end must be refused.
    (partial,) = dst.parent.glob(".big.bin.*.tcpart")
    cut = found.end() - 1000
    os.truncate(partial, cut)
    before = durable_now(dst)
    assert before.end() <= cut and before.contains(found - RangeSet.span(found.ranges[-1].start, found.end())), (
        f"after the file was cut at {cut}, the union read back is {before} (was {found})")
    mark = cluster.write_log.stat().st_size
    again = Client(argv)
    code, err = again.finish()
    assert code == 0, err + cluster.logs()
    check_identical(source, dst)
    planned = [e for e in again.events if e["event"] == "ranges-planned"][0]
    assert planned["durable_bytes"] == before.total()
    rerun = RangeSet()
    with open(cluster.write_log, "rb") as f:
        f.seek(mark)
        for line in f.read().decode().splitlines():
            _pid, offset, length, path = line.split(" ", 3)
            if path == str(dst) and int(length):
                rerun = rerun | RangeSet.span(int(offset), int(offset) + int(length))
    assert not rerun & before, f"the rerun wrote durable bytes again: {rerun & before}"
    assert rerun | before == RangeSet.span(0, SIZE)
    complete = [e for e in again.events if e["event"] == "complete"][0]
    assert complete["bytes_written"] == SIZE - before.total()


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
    client = Client(argv)
    code, err = client.finish()
    assert code == 0, err + cluster.logs()
    subprocess.run(["diff", "-r", str(src), str(dst)], check=True)
    assert [p.name for p in (dst / "d").iterdir()] == ["big.bin"]
    log = writes(cluster.write_log)[str(dst / "d" / "big.bin")]
    pids = {pid for pid, _, _ in log}
    assert len(pids) >= 2, f"the large file's ranges all ran on one worker ({pids})"
    assert sum(n for _, _, n in log) == big.stat().st_size  # each byte written once
