"""Tree copies: ``transfercore copy -r`` against ``cp -r``, ``rsync -a`` and
``rclone copy``, each followed by ``sync`` so that every tool ends durable.

Prints figures; it is not a test.  ``transfercore copy -r`` is durable and
verified when it exits (every file read back and compared by CRC32C before
it is published); the other tools neither verify nor make anything durable
until the ``sync``.  Commands run alternately (the order rotates every
round) on the same source tree; before each, the destination is deleted,
everything is synced, the page cache is dropped (``--warm`` keeps it) and
the script waits ``--settle`` seconds.  The figure is the median over rounds
of each tool's time divided by transfercore's (above 1.0: transfercore is
faster), with the range over rounds, and each command's peak RSS.

    python benchmarks/bench_tree.py --files 3000 30000 --rounds 3 --dir /some/scratch
    python benchmarks/bench_tree.py --files 20000 --max-size 4K --rounds 5   # many small files
    python benchmarks/bench_tree.py --manifest-entries 1000000 --dir /some/scratch
    python benchmarks/bench_tree.py --files 20000 --max-size 4K --rounds 5 --fs ext4   # on a fresh file system

``--fs ext4`` (or ``xfs``) runs everything on a new file system of that kind
(:mod:`scratchfs`): a root file system without a journal makes every file
created soon after a mass delete (each round's ``rm -r``) scan past the freed
inodes, which moves every tool's time by up to 2x from round to round.

The reference tools are not needed by the tests; see benchmarks/requirements-tree.txt
(GNU time measures the peak RSS).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scratchfs import KINDS, describe, scratch_fs

from transfercore.sizes import format_size, parse_size
from transfercore.testing.trees import TreeSpec, make_tree


def drop_caches() -> bool:
    try:
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return True
    except OSError:
        return False


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (every core,
    kernel threads included: ``/proc/stat``, all but idle and iowait)."""
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def timed(argv: list[str]) -> tuple[float, int, float, float]:
    """Run ``argv`` then ``sync``; return (seconds, peak RSS of argv in KiB,
    CPU seconds of argv, user and system, and CPU seconds the whole machine
    was busy meanwhile, the sync and the kernel's writeback included).

    The peak and the CPU time come from GNU time: the rusage of a child forked
    from this Python process would count the pages it shared before exec."""
    with tempfile.NamedTemporaryFile("r") as report:
        busy = busy_seconds()
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-o", report.name, "-f", "%M %U %S", *argv], stdout=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise SystemExit(f"{argv[0]} failed with {proc.returncode}")
        subprocess.run(["sync"], check=True)
        seconds = time.perf_counter() - start
        busy = busy_seconds() - busy
        peak, user, system = report.read().split()[-3:]
        return seconds, int(peak), float(user) + float(system), busy


def tools(src: Path, dst: Path, journal: Path, files: int, dst_options: str = "") -> dict[str, list[str]]:
    target = f"posix://{dst}?{dst_options}" if dst_options else str(dst)
    tc = [sys.executable, "-m", "transfercore", "copy", "-r", str(src), target, "--journal", str(journal),
          "--quiet", "--files", str(files)]
    out = {"transfercore": tc, "cp -r": ["cp", "-r", str(src), str(dst)]}
    # the reference tools that are installed (benchmarks/requirements-tree.txt); a missing one is left out
    if shutil.which("rsync"):
        out["rsync -a"] = ["rsync", "-a", f"{src}/", f"{dst}/"]
    if shutil.which("rclone"):
        out["rclone --transfers 8"] = ["rclone", "copy", "-q", "--transfers", "8", str(src), str(dst)]
    return out


def bench_tree(root: Path, n: int, args: argparse.Namespace) -> None:
    src = root / f"src-{n}"
    spec = TreeSpec(files=n, max_size=args.max_size, distribution=args.distribution, seed=n)
    if not src.exists():
        make_tree(src, spec)
    count = sum(len(f) for _, _, f in os.walk(src))
    size = sum(os.lstat(os.path.join(d, x)).st_size for d, _, fs in os.walk(src) for x in fs)
    print(f"\ntree of {count} entries ({n} files, {args.distribution} 0-{format_size(args.max_size)}), "
          f"{format_size(size)}; {args.rounds} rounds, {'warm' if args.warm else 'cold'} page cache, "
          f"settle {args.settle} s", flush=True)
    dst = root / "dst"
    journal = root / "journal.db"
    commands = tools(src, dst, journal, args.tc_files, args.dst_options)
    names = list(commands)
    times: dict[str, list[float]] = {k: [] for k in names}
    rss: dict[str, int] = dict.fromkeys(names, 0)
    cpu: dict[str, list[float]] = {k: [] for k in names}
    machine: dict[str, list[float]] = {k: [] for k in names}
    for r in range(args.rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            shutil.rmtree(dst, ignore_errors=True)
            for p in root.glob("journal.db*"):
                p.unlink()
            subprocess.run(["sync"], check=True)
            if not args.warm:
                drop_caches()
            time.sleep(args.settle)
            seconds, peak, used, busy = timed(commands[name])
            times[name].append(seconds)
            cpu[name].append(used)
            machine[name].append(busy)
            rss[name] = max(rss[name], peak)
            print(f"  round {r + 1}: {name:<22} {seconds:7.2f} s  {format_size(size / seconds)}/s  "
                  f"{count / seconds:8.0f} files/s  CPU {used:6.2f} s  machine {busy:6.2f} s  "
                  f"peak RSS {format_size(peak * 1024)}", flush=True)
    shutil.rmtree(dst, ignore_errors=True)
    tc = times["transfercore"]
    print(f"  {'command':<22} {'median s':>9} {'min-max s':>15} {'ratio':>7} {'ratio range':>13} "
          f"{'ms/file':>8} {'CPU s':>7} {'machine s':>10} {'peak RSS':>10}")
    for name in names:
        ts = times[name]
        ratios = [t / c for t, c in zip(ts, tc, strict=True)]
        print(f"  {name:<22} {statistics.median(ts):9.2f} {min(ts):7.2f}-{max(ts):<7.2f} "
              f"{statistics.median(ratios):7.2f} {min(ratios):6.2f}-{max(ratios):<6.2f} "
              f"{1000 * statistics.median(ts) / count:8.3f} {statistics.median(cpu[name]):7.2f} "
              f"{statistics.median(machine[name]):10.2f} {format_size(rss[name] * 1024):>10}")
    print("  ratio = the command's time / transfercore's in the same round (above 1.0: transfercore faster); "
          "CPU s = user + system seconds of the command (median), the sync not included; machine s = CPU "
          f"seconds all {os.cpu_count()} cores were busy meanwhile (median; the sync, the kernel's writeback "
          "and anything else running included)")


def bench_manifest(root: Path, entries: int) -> None:
    """Peak memory of a campaign from an ``entries``-line manifest of empty files."""
    src = root / "manifest-src"
    manifest = root / "manifest.txt"
    if not manifest.exists():
        print(f"creating {entries} empty files ...", flush=True)
        with open(manifest, "w") as out:
            for i in range(entries):
                d = src / f"d{i // 1000:05d}"
                if i % 1000 == 0:
                    d.mkdir(parents=True)
                rel = f"d{i // 1000:05d}/f{i:07d}"
                os.close(os.open(src / rel, os.O_CREAT | os.O_WRONLY, 0o644))
                out.write(rel + "\n")
    dst = root / "manifest-dst"
    shutil.rmtree(dst, ignore_errors=True)
    journal = root / "manifest.db"
    for p in root.glob("manifest.db*"):
        p.unlink()
    argv = [sys.executable, "-m", "transfercore", "copy", "-r", str(src), str(dst), "--files-from", str(manifest),
            "--journal", str(journal), "--quiet"]
    seconds, peak, _, _ = timed(argv)
    files = sum(len(f) for _, _, f in os.walk(dst))
    print(f"\nmanifest of {entries} entries: {files} files copied in {seconds:.1f} s "
          f"({files / seconds:.0f} files/s), peak RSS {format_size(peak * 1024)}, "
          f"journal {format_size(sum(p.stat().st_size for p in root.glob('manifest.db*')))}")
    shutil.rmtree(dst, ignore_errors=True)


def run(root: Path, args: argparse.Namespace) -> None:
    missing = [t for t in ("rsync", "rclone") if not shutil.which(t)]
    print(f"bench_tree: {os.cpu_count()} CPUs, scratch {root} ({describe(root)}); tools: "
          f"{', '.join(['cp'] + [t for t in ('rsync', 'rclone') if t not in missing])}"
          f"{' (' + ' and '.join(missing) + ' missing: apt-get install ' + ' '.join(missing) + ')' if missing else ''}; "
          f"page cache {'kept' if args.warm else 'dropped' if drop_caches() else 'NOT dropped (no permission)'}")
    for n in args.files:
        bench_tree(root, n, args)
    if args.manifest_entries:
        bench_manifest(root, args.manifest_entries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, nargs="*", default=[3000, 30000], help="tree sizes in files")
    parser.add_argument("--max-size", type=parse_size, default=parse_size("1M"))
    parser.add_argument("--distribution", choices=("uniform", "log"), default="uniform",
                        help="file sizes uniform in 0-max (default) or log-uniform (many small files)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=float, default=2.0)
    parser.add_argument("--warm", action="store_true", help="keep the page cache between commands")
    parser.add_argument("--tc-files", type=int, default=8, help="transfercore --files")
    parser.add_argument("--dst-options", default="",
                        help="posix driver options of transfercore's destination, e.g. batch_sync=fsync")
    parser.add_argument("--manifest-entries", type=int, default=0, help="measure a manifest of this many entries")
    parser.add_argument("--dir", help="scratch directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the generated trees")
    parser.add_argument("--fs", choices=KINDS,
                        help="run on a new file system of this kind in a loop-mounted image (root needed)")
    parser.add_argument("--fs-size", type=parse_size, default=parse_size("4G"), help="the image's size (default 4G)")
    args = parser.parse_args()
    scratch = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench-tree-"))
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        with scratch_fs(scratch, args.fs, args.fs_size, "bench_tree") as root:
            run(root, args)
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
