"""HPSS driver (on the emulator) against the POSIX driver, same file size, same disk.

``--rounds`` rounds (default 3), each running, in alternating order, the
POSIX driver with a restart marker (fdatasync) every 256 MiB and the HPSS
driver with segments of 64 MiB, 256 MiB, 1 GiB and one segment for the whole
file, and with 64 MiB and 256 MiB segments two at a time (``inflight=2``).  Before every run the previous file is gone, everything is synced, and
the script waits ``--settle`` seconds, as ``bench_copy.py`` does (on a VM
that returns freed memory to its host, whichever run starts right after a
deletion otherwise gets warm pages and the others do not).  Prints the median
throughput of each configuration and the median of the per-round ratios.

    python benchmarks/bench_hpss.py [--size 2GiB] [--rounds 5] [--dir DIR]

The target: with a marker every 256 MiB the HPSS driver reaches at least
0.9x the POSIX driver's throughput.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

from transfercore.registry import open_location
from transfercore.sizes import format_size, parse_size

MiB = 1 << 20
BLOCK = 4 * MiB


def source_block() -> memoryview:
    # Incompressible, generated once: the benchmark measures the write path, not a source.
    return memoryview(os.urandom(64 * MiB))


def run(url: str, path: str, size: int, marker_every: int | None, src: memoryview) -> tuple[float, int]:
    endpoint = open_location(url)
    driver = endpoint.driver
    markers = 0
    start = time.perf_counter()
    w = driver.open_write(endpoint.path, size)
    next_marker = marker_every
    last = None
    for off in range(0, size, BLOCK):
        n = min(BLOCK, size - off)
        s = off % len(src)
        w.write(off, src[s : s + n])
        if next_marker is not None and off + n >= next_marker:
            last = w.durable()
            next_marker += marker_every
    w.complete()
    elapsed = time.perf_counter() - start
    hpss_markers = getattr(w, "markers", None)
    if hpss_markers is not None:
        markers = len(hpss_markers)
    elif marker_every:
        markers = size // marker_every + (1 if size % marker_every else 0)
    del last
    os.unlink(path)
    return elapsed, markers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="2GiB", help="file size (default 2GiB)")
    parser.add_argument("--dir", default=None, help="directory on the disk to measure (default: a temporary one)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to wait before each run (default 3)")
    args = parser.parse_args()
    size = parse_size(args.size)
    base = tempfile.mkdtemp(prefix="bench-hpss-", dir=args.dir)
    hpss_root = os.path.join(base, "hpss")
    os.mkdir(hpss_root)
    os.environ["HPSS_EMU_ROOT"] = hpss_root
    src = source_block()
    posix_path = os.path.join(base, "posix.bin")
    configs: list[tuple[str, str, str, int | None]] = [
        ("posix, marker every 256 MiB", f"posix://{posix_path}", posix_path, 256 * MiB)
    ]
    for label, segment in (("64 MiB", 64 * MiB), ("256 MiB", 256 * MiB), ("1 GiB", 1024 * MiB),
                           ("one segment", -(-size // BLOCK) * BLOCK)):
        configs.append((f"hpss, segment {label}", f"hpss:///hpss.bin?segment={segment}&block={BLOCK}",
                        os.path.join(hpss_root, "hpss.bin"), None))
    # two segments executed at once (the driver's inflight option), each in a PIO group of its own
    for label, segment in (("64 MiB", 64 * MiB), ("256 MiB", 256 * MiB)):
        configs.append((f"hpss, segment {label}, 2 in flight",
                        f"hpss:///hpss.bin?segment={segment}&block={BLOCK}&inflight=2",
                        os.path.join(hpss_root, "hpss.bin"), None))
    times: dict[str, list[float]] = {c[0]: [] for c in configs}
    markers: dict[str, int] = {}
    ratios: list[float] = []
    try:
        for r in range(args.rounds):
            order = configs if r % 2 == 0 else list(reversed(configs))
            got: dict[str, float] = {}
            for label, url, path, every in order:
                os.sync()
                time.sleep(args.settle)
                got[label], markers[label] = run(url, path, size, every, src)
                times[label].append(got[label])
            ratios.append(got["posix, marker every 256 MiB"] / got["hpss, segment 256 MiB"])
            print(f"round {r + 1}: " + ", ".join(f"{k.split(',')[0]}{k.split('segment')[-1] if 'hpss' in k else ''} "
                                                  f"{size / v / MiB:.0f} MiB/s" for k, v in got.items()), flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    posix_rate = size / statistics.median(times[configs[0][0]])
    print(f"file size {format_size(size)}, block {format_size(BLOCK)}, {args.rounds} rounds, settle {args.settle:g} s")
    print(f"{'configuration':46} {'median MiB/s':>13} {'markers':>8} {'vs posix':>9}")
    for label, ts in times.items():
        rate = size / statistics.median(ts)
        print(f"{label:46} {rate / MiB:13.1f} {markers[label]:8d} {rate / posix_rate:8.2f}x")
    ratio = statistics.median(ratios)
    print(f"target (hpss, 256 MiB segments >= 0.9x posix, median of per-round ratios): "
          f"{'met' if ratio >= 0.9 else 'NOT met'} ({ratio:.2f}x; per round: {', '.join(f'{x:.2f}' for x in ratios)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
