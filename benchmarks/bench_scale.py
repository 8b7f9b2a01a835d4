"""Tree campaigns at scale: the local pool against Dask, and the inputs of
the projection in docs/scale-out.md.

Prints figures; it is not a test.  Five measurements, each repeated
``--rounds`` times (the tree copies alternate, the order rotating each
round), reported as the median with the range over rounds:

1. the same tree copied by ``transfercore copy -r`` with the local pool,
   on one Dask worker and on three (the same number of task threads in
   each: ``--threads``), every copy durable and verified at exit;
2. the engine's cost per task through the executor seam: empty tasks
   submitted and waited for as the runner does (a window of twice the
   threads), on the three-worker cluster and on the local pool;
3. the campaign journal at the client: rows per second for the walk's
   inserts, for ``mark_started`` and for recording outcomes, in the batch
   sizes the runner uses;
4. the client's walk of the source tree (entries per second; the tree is in
   the page cache after the first round, so this is the walk's CPU cost);
5. the client's whole run over the same tree with tasks that do nothing but
   report their files complete: its own ceiling in files per second.

    python benchmarks/bench_scale.py --files 5000 --rounds 3 --dir /some/scratch

The clusters are real ``dask scheduler`` / ``dask worker`` processes on
127.0.0.1, on this machine, sharing its cores and disk with the client.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from transfercore.campaign import CampaignStore, Entry, FileState, Kind, LocalPool, TreeCopy, TreeOptions
from transfercore.campaign.dask_executor import DaskExecutor
from transfercore.campaign.store import Outcome
from transfercore.campaign.tasks import FileResult
from transfercore.campaign.walk import walk
from transfercore.registry import open_location
from transfercore.testing.dask_cluster import DaskCluster
from transfercore.testing.trees import TreeSpec, make_tree


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} (range {min(values):,.0f}-{max(values):,.0f})"


def copy_tree(src: Path, work: Path, threads: int, scheduler: str | None) -> dict:
    dst, journal = work / "dst", work / "journal.db"
    shutil.rmtree(dst, ignore_errors=True)
    journal.unlink(missing_ok=True)
    subprocess.run(["sync"], check=True)
    argv = [sys.executable, "-m", "transfercore", "copy", "-r", str(src), str(dst), "--journal", str(journal),
            "--json", "--files", str(threads)]
    if scheduler:
        argv += ["--scheduler", scheduler]
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"copy failed: {proc.stderr}")
    done = [json.loads(line) for line in proc.stdout.splitlines() if '"tree-done"' in line][0]
    return {"wall": wall, "elapsed": done["elapsed"], "files": done["files"]}


def task_rate(submit_executor: Callable[[], object], tasks: int, window: int) -> float:
    executor = submit_executor()
    inflight: set = set()
    sent = done = 0
    started = time.monotonic()
    while done < tasks:
        while sent < tasks and len(inflight) < window:
            inflight.add(executor.submit(functools.partial(int, 0)))  # type: ignore[attr-defined]
            sent += 1
        finished, _ = executor.wait(list(inflight), 1.0)  # type: ignore[attr-defined]
        for f in finished:
            f.result()
        inflight -= finished
        done += len(finished)
    rate = tasks / (time.monotonic() - started)
    return rate


def _nothing(specs: list) -> list:
    return [FileResult(spec.rel, FileState.COMPLETE, spec.size, written=spec.size) for spec in specs]


class NullPool(LocalPool):
    """Tasks that only report their files complete: what is left is the client's own work."""

    def submit(self, task):  # type: ignore[no-untyped-def]
        specs = list(getattr(task, "files", None) or [task.file])
        return super().submit(functools.partial(_nothing, specs))


def client_rates(src: Path, work: Path, threads: int) -> dict[str, float]:
    """The phases of the client's run, timed from its events."""
    journal = work / "client-journal.db"
    journal.unlink(missing_ok=True)
    dst = work / "client-dst"
    shutil.rmtree(dst, ignore_errors=True)
    seen: dict[str, float] = {}
    counts: dict[str, int] = {}

    def listen(event) -> None:  # type: ignore[no-untyped-def]
        now = time.monotonic()
        if event.kind == "tree-start":
            seen["walked"] = now
            counts.update(entries=event.files + event.dirs + event.links, files=event.files, dirs=event.dirs)
        elif event.kind == "file-done":
            seen.setdefault("first file", now)
            seen["last file"] = now
        elif event.kind == "tree-done":
            seen["done"] = now

    with CampaignStore(journal) as store:
        tree = TreeCopy(str(src), str(dst), TreeOptions(files=threads), store, executor=NullPool(threads))
        tree.add_listener(listen)
        started = time.monotonic()
        tree.run()
    directories = (seen["first file"] - seen["walked"]) + (seen["done"] - seen["last file"])
    return {
        "walk and journal inserts, entries/s": counts["entries"] / (seen["walked"] - started),
        "directories made and given their times, dirs/s": counts["dirs"] / directories,
        "files handed out and recorded, files/s": counts["files"] / (seen["last file"] - seen["first file"]),
        "the whole run, files/s": counts["files"] / (seen["done"] - started),
    }


def journal_rates(path: Path, rows: int, batch: int) -> dict[str, float]:
    path.unlink(missing_ok=True)
    out: dict[str, float] = {}
    with CampaignStore(path) as store:
        campaign = store.open_campaign("posix:///src", "posix:///dst", "", {})
        entries = [Entry(f"d{i // 1000:05d}/f{i:08d}", Kind.FILE, 1000, 1, 0o644, f"i{i}") for i in range(rows)]
        t = time.monotonic()
        store.record_walk(campaign, entries)
        out["walk inserts"] = rows / (time.monotonic() - t)
        rels = [e.rel for e in entries]
        t = time.monotonic()
        for i in range(0, rows, batch * 16):  # the runner marks a window of tasks at once
            store.mark_started(campaign, rels[i:i + batch * 16])
        out["mark_started"] = rows / (time.monotonic() - t)
        t = time.monotonic()
        for i in range(0, rows, batch):
            store.record(campaign, [Outcome(r, FileState.COMPLETE, "crc32c:0") for r in rels[i:i + batch]])
        out["record outcomes"] = rows / (time.monotonic() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--max-size", type=int, default=64 * 1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=6, help="task threads in every configuration")
    parser.add_argument("--tasks", type=int, default=3000, help="empty tasks per task-rate round")
    parser.add_argument("--journal-rows", type=int, default=200_000)
    parser.add_argument("--dir", default=None, help="scratch directory (default: a temporary one)")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="bench-scale-", dir=args.dir))
    clusters: list[DaskCluster] = []
    try:
        src = base / "src"
        files, size = make_tree(src, TreeSpec(files=args.files, max_size=args.max_size, seed=7))
        print(f"tree: {files} files, {size / 2**20:.1f} MiB; {args.threads} task threads per configuration; "
              f"{args.rounds} rounds; this machine: {len(__import__('os').sched_getaffinity(0))} cores, shared")
        one = DaskCluster(base / "one", workers=1, nthreads=args.threads, log_writes=False)
        three = DaskCluster(base / "three", workers=3, nthreads=max(1, args.threads // 3), log_writes=False)
        clusters += [one, three]
        one.start()
        three.start()
        configs: list[tuple[str, str | None]] = [("local pool", None), ("dask, 1 worker", one.address),
                                                 ("dask, 3 workers", three.address)]
        results: dict[str, list[float]] = {name: [] for name, _ in configs}
        for r in range(args.rounds):
            order = configs[r % len(configs):] + configs[:r % len(configs)]
            for name, address in order:
                got = copy_tree(src, base / "work", args.threads, address)
                results[name].append(got["files"] / got["elapsed"])
        print("\n1. tree copy, files per second (the run's own elapsed time, walk included):")
        for name, values in results.items():
            print(f"   {name:<16} {spread(values)}")

        small, large = 2 * args.threads, args.tasks
        rates: dict[str, list[float]] = {f"dask, window {small}": [], f"dask, window {large}": [],
                                         f"local, window {small}": []}
        from distributed import Client

        with Client(three.address, set_as_default=False) as client:
            for _ in range(args.rounds):
                for window in (small, large):
                    rates[f"dask, window {window}"].append(
                        task_rate(lambda: DaskExecutor(client, check=False), args.tasks, window))
                rates[f"local, window {small}"].append(task_rate(lambda: LocalPool(args.threads), args.tasks, small))
        print("\n2. empty tasks through the executor seam (3-worker cluster / local pool), tasks per second:")
        for name, values in rates.items():
            print(f"   {name:<20} {spread(values)}   ({1e6 / statistics.median(values):,.0f} us per task)")

        journal: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for k, v in journal_rates(base / "journal-bench.db", args.journal_rows, 128).items():
                journal.setdefault(k, []).append(v)
        print(f"\n3. campaign journal at the client, rows per second ({args.journal_rows:,} files, "
              "batches of 128, synchronous=FULL):")
        for name, values in journal.items():
            print(f"   {name:<16} {spread(values)}")

        walks = []
        driver = open_location(str(src)).driver
        for _ in range(args.rounds):
            t = time.monotonic()
            n = sum(1 for _ in walk(driver, str(src)))
            walks.append(n / (time.monotonic() - t))
        print(f"\n4. walk of the source tree at the client, entries per second: {spread(walks)}")

        phases: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for k, v in client_rates(src, base / "work", args.threads).items():
                phases.setdefault(k, []).append(v)
        print("\n5. the client's own work (tasks that do nothing but report their files complete):")
        for name, values in phases.items():
            print(f"   {name:<48} {spread(values)}")
    finally:
        for c in clusters:
            c.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
