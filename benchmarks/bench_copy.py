"""Throughput, marker cost, memory and rework of ``transfercore copy``.

Prints figures; it is not a test.  Every copy is durable at exit:

* ``transfercore copy SRC DST`` with default options (markers every 5 s and
  256 MiB, CRC32C verified by reading the destination back through the file
  system after ``fdatasync``; ``--dest-options direct=auto`` reads it back
  from the device instead),
* ``dd if=SRC of=DST bs=4M conv=fdatasync``,
* ``cp SRC DST`` followed by ``sync``,

run alternately, ``--rounds`` times; the figure is the median of the
per-round ratios of transfercore's throughput to each tool's, with every
round's ratio printed beside it.

**The default is the plainest fair run**: each command is started the same
way (a subprocess, timed from start to exit), right after the previous
command's destination was deleted and ``sync`` returned; no waiting, no
discarded warm-up.  That is what a user running the tools one after the
other sees, and the figures quoted in the docs come from it.

**Tuned mode** (``--settle S --warm-up``, labelled in the output) waits S
seconds after each cleanup and throws away a first copy.  On a virtual
machine with free page reporting (virtio-balloon), memory freed by deleting
the previous copy is handed back to the host a second or two later, and the
next command to fill the page cache then pays a host page fault per fresh
page; waiting makes every command start from that returned state, which
favours transfercore (it recycles a bounded set of pages, ``cp`` fills fresh
ones).  It measures a regime, not what users get by default.

Then a sweep over marker policies, with and without verification, the peak
memory of the copy, and the bytes moved again after a SIGKILL at about 50 %.

    python benchmarks/bench_copy.py --size 1G --rounds 5 --dir /some/scratch
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from transfercore.journal import Journal
from transfercore.ranges import RangeSet
from transfercore.sizes import format_size, parse_size

MiB = 1 << 20


def make_source(path: Path, size: int) -> None:
    chunk = 8 * MiB
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(chunk, left)
            f.write(os.urandom(n))
            left -= n
        f.flush()
        os.fsync(f.fileno())


#: CPU seconds (user + system) of the last command run by :func:`timed`.
last_cpu = 0.0


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall time and peak RSS (bytes) of one command; its CPU time goes to ``last_cpu``."""
    global last_cpu
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed with exit code {proc.returncode}")
    last_cpu = usage.ru_utime + usage.ru_stime
    return elapsed, usage.ru_maxrss * 1024


#: Seconds to wait after cleaning (tuned mode, see the module docstring); set from --settle.
settle = 0.0


#: Drop the source's pages before every command (``--cold-source``).
cold_source: Path | None = None


def clean(*paths: Path) -> None:
    for p in paths:
        if p.exists():
            p.unlink()
    for p in paths[0].parent.glob(".*.tcpart*"):
        p.unlink()
    os.sync()
    if cold_source is not None:
        fd = os.open(cold_source, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    time.sleep(settle)


#: Driver options for the destination URL (``--dest-options``), e.g. ``direct=auto``.
dest_options = ""


def destination(dst: Path) -> str:
    return f"posix://{dst}?{dest_options}" if dest_options else str(dst)


def tc(src: Path, dst: Path, state: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "transfercore", "copy", str(src), destination(dst), "--quiet",
            "--journal", str(state / "journal.sqlite"), "--no-resume", *extra]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1G", help="object size (default 1G)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--dir", default=None, help="scratch directory (default: a temporary one)")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--settle", type=float, default=0.0,
                        help="TUNED: seconds to wait after deleting the previous copy (default 0: the plain run)")
    parser.add_argument("--warm-up", action="store_true",
                        help="TUNED: run and discard one transfercore copy before the timed rounds")
    parser.add_argument("--dest-options", default="",
                        help="POSIX driver options for the destination, as in a URL query (e.g. direct=auto); "
                             "default: none, the driver's defaults")
    parser.add_argument("--cold-source", action="store_true",
                        help="drop the source from the page cache before every command, so each reads it from the disk")
    args = parser.parse_args()
    global settle, dest_options, cold_source
    settle = args.settle
    dest_options = args.dest_options
    size = parse_size(args.size)
    work = Path(tempfile.mkdtemp(prefix="tc-bench-", dir=args.dir))
    state = work / "state"
    state.mkdir()
    src, dst = work / "src.bin", work / "dst.bin"
    try:
        tuned = settle > 0 or args.warm_up
        mode = (f"TUNED run (settle {settle:g} s{', warm-up' if args.warm_up else ''})" if tuned
                else "plain run (each command started the same way, no settle, no warm-up)")
        print(f"# {mode}: {format_size(size)} object, {os.cpu_count()} CPUs, "
              f"destination options {dest_options or '(defaults)'}, "
              f"{'cold' if args.cold_source else 'cached'} source, scratch {work}")
        make_source(src, size)
        if args.cold_source:
            cold_source = src
        env = dict(os.environ, XDG_STATE_HOME=str(state))

        if args.warm_up:
            # Tuned: the first copy after writing the source otherwise competes
            # with its writeback and pays for cold imports.
            clean(dst)
            timed(tc(src, dst, state), env)

        # -- throughput against dd and cp+sync, alternating --------------------------------
        ratios_dd: list[float] = []
        ratios_cp: list[float] = []
        times: dict[str, list[float]] = {"tc": [], "dd": [], "cp": []}
        cpu: dict[str, list[float]] = {"tc": [], "dd": [], "cp": []}
        rss_tc: list[int] = []
        for r in range(args.rounds):
            order = ["tc", "dd", "cp"] if r % 2 == 0 else ["cp", "dd", "tc"]
            got: dict[str, float] = {}
            for tool in order:
                clean(dst)
                if tool == "tc":
                    got[tool], rss = timed(tc(src, dst, state), env)
                    rss_tc.append(rss)
                    cpu[tool].append(last_cpu)
                elif tool == "dd":
                    got[tool], _ = timed(["dd", f"if={src}", f"of={dst}", "bs=4M", "conv=fdatasync", "status=none"])
                    cpu[tool].append(last_cpu)
                else:
                    t1, _ = timed(["cp", str(src), str(dst)])
                    cpu[tool].append(last_cpu)
                    t2, _ = timed(["sync"])
                    got[tool] = t1 + t2
                times[tool].append(got[tool])
            ratios_dd.append(got["dd"] / got["tc"])
            ratios_cp.append(got["cp"] / got["tc"])
            print(f"round {r + 1}: " + ", ".join(
                f"{t} {size / got[t] / MiB:.0f} MiB/s ({got[t]:.2f} s)" for t in ("tc", "dd", "cp")))
        print(f"median throughput ratio transfercore/dd(conv=fdatasync): {statistics.median(ratios_dd):.2f}x "
              f"(per round: {', '.join(f'{x:.2f}' for x in ratios_dd)})")
        print(f"median throughput ratio transfercore/cp+sync: {statistics.median(ratios_cp):.2f}x "
              f"(per round: {', '.join(f'{x:.2f}' for x in ratios_cp)})")
        print("median CPU time (user + system; the kernel's writeback threads are not counted): " + ", ".join(
            f"{t} {statistics.median(cpu[t]):.2f} s" for t in ("tc", "dd", "cp")))
        print(f"peak RSS of transfercore copy: {format_size(max(rss_tc))} "
              f"(bound: 4 streams x 4 MiB + 64 MiB = {format_size(4 * 4 * MiB + 64 * MiB)})")

        # -- marker policies --------------------------------------------------------------
        if not args.skip_sweep:
            policies = {
                "none": ["--marker-interval", "0", "--marker-bytes", "0"],
                "5 s": ["--marker-interval", "5", "--marker-bytes", "0"],
                "1 s": ["--marker-interval", "1", "--marker-bytes", "0"],
                "64 MiB": ["--marker-interval", "0", "--marker-bytes", "64M"],
                "default (5 s + 256 MiB)": [],
            }
            # Markers also pace the in-step read-back, so with verification on,
            # "none" pays for a serial read-back at the end; the series without
            # verification isolates the cost of the flushes and records.
            for series, verify in (("verified", []), ("--checksum none", ["--checksum", "none"])):
                results: dict[str, list[float]] = {k: [] for k in policies}
                for r in range(args.rounds):
                    names = list(policies) if r % 2 == 0 else list(reversed(policies))
                    for name in names:
                        clean(dst)
                        t, _ = timed(tc(src, dst, state, *policies[name], *verify), env)
                        results[name].append(t)
                base = statistics.median(results["none"])
                for name, ts in results.items():
                    med = statistics.median(ts)
                    print(f"markers {name:>24}, {series:>15}: {size / med / MiB:6.0f} MiB/s, "
                          f"time vs none {100 * (med / base - 1):+5.1f} %")

        # -- bytes moved again after SIGKILL at ~50 % ------------------------------------------
        clean(dst)
        journal_path = state / "kill.sqlite"
        argv = [sys.executable, "-m", "transfercore", "copy", str(src), destination(dst), "--json",
                "--journal", str(journal_path), "--no-resume"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
        killed_at = 0
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line)
            if event["event"] == "progress" and event["bytes_done"] >= size // 2:
                proc.send_signal(signal.SIGKILL)
                killed_at = event["bytes_done"]
                break
        proc.wait()
        with Journal(journal_path) as journal:
            entry = journal.entries()[0]
        partials = list(work.glob(".dst.bin.*.tcpart"))
        if killed_at and partials:
            block = 4 * MiB
            written = []
            with open(partials[0], "rb") as f:
                off = 0
                while chunk := f.read(block):
                    if chunk.count(0) != len(chunk):
                        written.append((off, off + len(chunk)))
                    off += len(chunk)
            moved_again = (RangeSet.of(*written) - entry.marker).total()
            print(f"SIGKILL at {format_size(killed_at)} sent: marker held {format_size(entry.marker.total())}; "
                  f"bytes moved again {format_size(moved_again)} "
                  f"(bound: 256 MiB + 4 x 4 MiB = {format_size(256 * MiB + 16 * MiB)})")
            resume = [sys.executable, "-m", "transfercore", "copy", str(src), destination(dst), "--json",
                      "--journal", str(journal_path)]
            out = subprocess.run(resume, capture_output=True, text=True, env=env, check=True).stdout
            done = json.loads(out.splitlines()[-1])
            print(f"resume sent {format_size(done['bytes_sent'])}, kept {format_size(done['bytes_resumed'])}")
        else:
            print("SIGKILL test: the copy finished before reaching 50 %; use a larger --size")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
