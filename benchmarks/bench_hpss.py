"""HPSS driver (on the emulator) against the POSIX driver, same file size, same disk.

One run per configuration: the POSIX driver with a restart marker (fdatasync)
every 256 MiB, then the HPSS driver with segments of 64 MiB, 256 MiB, 1 GiB
and one segment for the whole file.  Prints throughput and marker counts.

    python benchmarks/bench_hpss.py [--size 2GiB] [--dir DIR]

The target: with a marker every 256 MiB the HPSS driver reaches at least
0.9x the POSIX driver's throughput.
"""

from __future__ import annotations

import argparse
import os
import shutil
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
    args = parser.parse_args()
    size = parse_size(args.size)
    base = tempfile.mkdtemp(prefix="bench-hpss-", dir=args.dir)
    hpss_root = os.path.join(base, "hpss")
    os.mkdir(hpss_root)
    os.environ["HPSS_EMU_ROOT"] = hpss_root
    src = source_block()
    results: list[tuple[str, float, int]] = []
    try:
        posix_path = os.path.join(base, "posix.bin")
        t, m = run(f"posix://{posix_path}", posix_path, size, 256 * MiB, src)
        results.append(("posix, marker every 256 MiB", t, m))
        for label, segment in (("64 MiB", 64 * MiB), ("256 MiB", 256 * MiB), ("1 GiB", 1024 * MiB),
                               ("one segment", -(-size // BLOCK) * BLOCK)):
            t, m = run(f"hpss:///hpss.bin?segment={segment}&block={BLOCK}", os.path.join(hpss_root, "hpss.bin"),
                       size, None, src)
            results.append((f"hpss, segment {label}", t, m))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    posix_rate = size / results[0][1]
    print(f"file size {format_size(size)}, block {format_size(BLOCK)}, one run each")
    print(f"{'configuration':34} {'MiB/s':>9} {'markers':>8} {'vs posix':>9}")
    for label, t, m in results:
        rate = size / t
        print(f"{label:34} {rate / MiB:9.1f} {m:8d} {rate / posix_rate:8.2f}x")
    ratio = (size / results[2][1]) / posix_rate
    print(f"target (hpss, 256 MiB segments >= 0.9x posix): {'met' if ratio >= 0.9 else 'NOT met'} ({ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
