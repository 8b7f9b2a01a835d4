"""One large file by ranges: ``cp`` + ``sync`` against ``transfercore copy
--ranges`` in the local pool and on 1, 2 and 3 Dask workers, and the cost of
one range task.

Prints figures; it is not a test.  Each measurement is repeated ``--rounds``
times, the order of the copies rotating each round, and reported as the
median with the range over rounds.  Every copy ends durable (``cp`` is
followed by ``sync FILE``, an fsync of the copy; the range copies sync each
range and publish with a directory sync) and the range copies are verified
(each range read back and compared by CRC32C with the source).  Before every
copy the source's pages are dropped from the page cache
(``posix_fadvise(DONTNEED)`` on the source only), so each copy reads it from
the device.

The per-task cost is measured on a small file copied as 1 range and as
``--small-ranges`` ranges, the tasks run one at a time (a Dask worker of one
thread; one local thread) so that the same bytes move serially either way:
(T(many) - T(one)) / (many - 1).  It includes what each task does once: open
a range writer (read every record back), open the source, store its record
at least once (fdatasync, fsync, rename, directory fsync), read its range
back, and on Dask the scheduling round trip.

    python benchmarks/bench_ranges.py --size 4G --rounds 3 --dir /some/scratch

The clusters are real ``dask scheduler`` / ``dask worker`` processes (2
threads each) on 127.0.0.1, on this machine, sharing its cores and disk.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from transfercore.sizes import format_size, parse_size
from transfercore.testing.dask_cluster import DaskCluster


def spread(values: list[float], fmt: str = "{:,.2f}") -> str:
    return f"{fmt.format(statistics.median(values))} (range {fmt.format(min(values))}-{fmt.format(max(values))})"


def make_source(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size == size:
        return
    chunk = 64 * 1024 * 1024
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(chunk, left)
            f.write(os.urandom(n))
            left -= n
        os.fsync(f.fileno())


def drop_source(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def fresh(dst: Path) -> None:
    for p in dst.parent.iterdir():
        if p.name == dst.name or p.name.startswith(f".{dst.name}."):
            p.unlink()


def timed(argv: list[str], src: Path, dst: Path) -> tuple[float, list[dict]]:
    fresh(dst)
    drop_source(src)
    began = time.monotonic()
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    seconds = time.monotonic() - began
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return seconds, events


def cp_sync(src: Path, dst: Path) -> float:
    fresh(dst)
    drop_source(src)
    began = time.monotonic()
    subprocess.run(["cp", "--reflink=never", str(src), str(dst)], check=True)
    subprocess.run(["sync", str(dst)], check=True)
    return time.monotonic() - began


def ranged(src: Path, dst: Path, *, ranges: int, workers: int | None = None, scheduler: str | None = None,
           block: str = "4M") -> list[str]:
    argv = [sys.executable, "-m", "transfercore", "copy", str(src), str(dst), "--json", "--ranges", str(ranges),
            "--block-size", block]
    if scheduler:
        argv += ["--scheduler", scheduler]
    else:
        argv += ["--range-workers", str(workers or 1)]
    return argv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="4G")
    parser.add_argument("--range-size", default="256M")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", default="1,2,3", help="Dask worker counts to measure")
    parser.add_argument("--local-workers", type=int, default=4, help="threads of the local range split")
    parser.add_argument("--small", default="16M", help="file size for the per-task cost")
    parser.add_argument("--small-ranges", type=int, default=64)
    parser.add_argument("--dir", help="scratch directory (default: a temporary one)")
    args = parser.parse_args()
    size = parse_size(args.size, what="--size")
    ranges = max(1, -(-size // parse_size(args.range_size, what="--range-size")))
    small = parse_size(args.small, what="--small")
    scratch = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench-ranges-"))
    scratch.mkdir(parents=True, exist_ok=True)
    src, dst = scratch / "big.src", scratch / "out" / "big.bin"
    dst.parent.mkdir(exist_ok=True)
    make_source(src, size)
    counts = [int(n) for n in args.workers.split(",") if n]
    print(f"file {format_size(size)} in {ranges} ranges; {args.rounds} rounds; load average {os.getloadavg()}",
          flush=True)

    results: dict[str, list[float]] = {}
    tasks: dict[str, list[float]] = {}

    def record(label: str, seconds: float, events: list[dict] | None = None) -> None:
        results.setdefault(label, []).append(seconds)
        for e in events or []:
            if e["event"] == "range-done":
                tasks.setdefault(label, []).append(e["seconds"])
        print(f"  {label}: {seconds:.2f} s ({format_size(size / seconds)}/s)", flush=True)

    for n in counts:
        cluster = DaskCluster(scratch / f"cluster{n}", workers=n, nthreads=2, log_writes=False)
        try:
            cluster.start()
            for r in range(args.rounds):
                print(f"round {r + 1}, {n} Dask workers", flush=True)
                seconds, events = timed(ranged(src, dst, ranges=ranges, scheduler=cluster.address), src, dst)
                record(f"dask, {n} worker(s) x 2 threads", seconds, events)
        finally:
            cluster.stop()
    for r in range(args.rounds):
        print(f"round {r + 1}, local", flush=True)
        order = ["cp", "local"] if r % 2 == 0 else ["local", "cp"]
        for what in order:
            if what == "cp":
                record("cp + sync", cp_sync(src, dst))
            else:
                seconds, events = timed(ranged(src, dst, ranges=ranges, workers=args.local_workers), src, dst)
                record(f"local split, {args.local_workers} threads", seconds, events)
    subprocess.run(["cmp", str(src), str(dst)], check=True)

    # Per-task cost, on a smaller file: 1 range against many, the tasks run one
    # at a time (1 Dask worker of 1 thread; 1 local thread), so the same bytes
    # move serially either way and the difference is the cost of the extra tasks.
    small_src, small_dst = scratch / "small.src", scratch / "out" / "small.bin"
    make_source(small_src, small)
    overhead: dict[str, list[float]] = {}
    cluster = DaskCluster(scratch / "cluster-overhead", workers=1, nthreads=1, log_writes=False)
    try:
        cluster.start()
        for _ in range(args.rounds):
            for label, sched in (("dask, 1 worker x 1 thread", cluster.address), ("local, 1 thread", None)):
                one, _ = timed(ranged(small_src, small_dst, ranges=1, workers=1, scheduler=sched, block="256K"),
                               small_src, small_dst)
                many, _ = timed(ranged(small_src, small_dst, ranges=args.small_ranges, workers=1, scheduler=sched,
                                       block="256K"), small_src, small_dst)
                overhead.setdefault(label, []).append((many - one) / (args.small_ranges - 1) * 1000)
    finally:
        cluster.stop()

    print(f"\n{format_size(size)} file, median over {args.rounds} rounds (range):")
    print("| copy | seconds | throughput | range task seconds (median) |")
    print("|---|---|---|---|")
    for label, values in results.items():
        rate = [size / v / 1024 / 1024 for v in values]
        per_task = f"{statistics.median(tasks[label]):.2f}" if label in tasks else ""
        print(f"| {label} | {spread(values)} | {spread(rate, '{:,.0f}')} MiB/s | {per_task} |")
    print(f"\nper range task, {format_size(small)} as 1 range vs {args.small_ranges}, ms per extra task:")
    for label, values in overhead.items():
        print(f"| {label} | {spread(values, '{:,.1f}')} ms |")


if __name__ == "__main__":
    main()
