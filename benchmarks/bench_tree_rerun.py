"""The rerun of an intact, finished tree copy: ``transfercore copy -r``
against ``rsync -a`` on the same intact tree, both only comparing.

Prints figures; it is not a test.  Both destinations are first made
complete (transfercore's by one ``copy -r``, rsync's by one ``rsync -a``),
then each round runs both again, alternating which goes first: transfercore
lists every destination directory once and checks every entry's size,
time, identity and version against its journal (see docs/trees.md), rsync
lstat()s both sides of every entry; neither writes anything.  Each rerun's
output is checked to have copied nothing.  ``--cold`` drops the page cache
(dentries and inodes too) before each command; the default keeps it warm,
as a rerun right after a copy finds it.  The figure is the median of each
command's time and the ratio rsync / transfercore per round (above 1.0:
transfercore is faster), with the range over rounds.

    python benchmarks/bench_tree_rerun.py --files 20000 --rounds 7 --dir /some/scratch
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from transfercore.testing.trees import TreeSpec, make_tree


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as fh:
        fh.write("3\n")


#: As installed: byte code cached (an environment that forbids writing it
#: would charge every run the compilation of the whole package).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run(argv: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=ENV)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed with {proc.returncode}: {proc.stderr[-2000:]}")
    return seconds, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--dir", help="scratch directory (default: a temporary one)")
    parser.add_argument("--cold", action="store_true", help="drop the page cache before each command")
    parser.add_argument("--keep", action="store_true", help="keep the trees")
    args = parser.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="bench-tree-rerun-"))
    root.mkdir(parents=True, exist_ok=True)
    src, dst_tc, dst_rsync, journal = root / "src", root / "dst-tc", root / "dst-rsync", root / "journal.db"
    try:
        if not src.exists():
            make_tree(src, TreeSpec(files=args.files, max_size=64 * 1024, seed=args.files))
        entries = sum(len(d) + len(f) for _, d, f in os.walk(src))
        tc = [sys.executable, "-m", "transfercore", "copy", "-r", str(src), str(dst_tc), "--journal", str(journal),
              "--json"]
        rsync = ["rsync", "-a", "--itemize-changes", f"{src}/", f"{dst_rsync}/"]
        first, _ = run(tc)
        run(rsync)
        print(f"tree of {entries} entries ({args.files} files); first copy by transfercore {first:.1f} s; "
              f"{args.rounds} rounds, {'cold' if args.cold else 'warm'} page cache", flush=True)
        times: dict[str, list[float]] = {"transfercore": [], "rsync -a": []}
        ratios: list[float] = []
        for i in range(args.rounds):
            order = [("transfercore", tc), ("rsync -a", rsync)]
            if i % 2:
                order.reverse()
            got: dict[str, float] = {}
            for name, argv in order:
                if args.cold:
                    drop_caches()
                seconds, out = run(argv)
                if name == "transfercore":
                    done = json.loads(out.splitlines()[-1])
                    assert done["event"] == "tree-done" and done["copied"] == 0 and done["repaired"] == 0, done
                else:
                    assert out.strip() == "", f"rsync found something to do: {out[:200]}"
                got[name] = seconds
                times[name].append(seconds)
            ratios.append(got["rsync -a"] / got["transfercore"])
            print(f"  round {i + 1}: transfercore {got['transfercore']:.2f} s, rsync -a {got['rsync -a']:.2f} s",
                  flush=True)
        for name, values in times.items():
            print(f"{name}: median {statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})")
        print(f"rsync -a / transfercore: median {statistics.median(ratios):.2f}x "
              f"({min(ratios):.2f}-{max(ratios):.2f})")
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
