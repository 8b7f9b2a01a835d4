"""Power cuts under the transfercore DSI and under the server's built-in file storage.

Both run in the real ``globus-gridftp-server`` on the project's power-loss file
system (FUSE; what was not fsynced is gone after a crash).  A throttled
``globus-url-copy -fast -p 4`` upload (MODE E) runs until the k-th ``111``
marker reaches the client; the power is cut a random 0-2 s later; the
surviving file (for the DSI: the posix driver's partial file) is compared with
the source over every range the markers named.

    python benchmarks/powerloss_dsi.py                  # 40 MiB, cuts after 1 and 2 markers, 2 trials each
    python benchmarks/powerloss_dsi.py --size 64MiB --cuts 1,2,3 --trials 3

Needs root (FUSE with allow_other; the built-in server's sessions run as nobody),
fuse3, mfusepy and the Globus tools.  It prints figures and never fails on them.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from transfercore_globus_dsi.testing import PowerLossTrial

from transfercore.sizes import format_size, parse_size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="40MiB")
    ap.add_argument("--cuts", default="1,2")
    ap.add_argument("--trials", type=int, default=2)
    ap.add_argument("--duty", type=float, default=0.005, help="fraction of the time the client runs")
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (FUSE allow_other, the built-in server's sessions switch to nobody)")
        return 2
    size = parse_size(args.size, what="--size")
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="powerloss-dsi-"))
    work.chmod(0o755)
    try:
        source = work / "source.bin"
        source.write_bytes(rng.randbytes(size))
        print(f"{format_size(size)} MODE E -p 4 PUT, power cut 0-2 s after the k-th 111 marker, "
              f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}")
        print(f"{'storage':<26} {'cut after':>9} {'marked':>10} {'lost':>10} {'lost %':>7} {'file kept':>9}")
        totals: dict[str, list[int]] = {}
        for k in [int(c) for c in args.cuts.split(",") if c]:
            for _ in range(args.trials):
                for kind in ("dsi", "file"):
                    trial = PowerLossTrial(kind, work, source, markers=k, duty=args.duty, delay=rng.uniform(0, 2))
                    try:
                        trial.run()
                    finally:
                        trial.close()
                    name = "transfercore DSI (posix)" if kind == "dsi" else "built-in file storage"
                    marked = trial.marked.total()
                    pct = 100 * trial.lost / marked if marked else 0.0
                    sums = totals.setdefault(name, [0, 0])
                    sums[0] += marked
                    sums[1] += trial.lost
                    print(f"{name:<26} {k:>9} {marked:>10} {trial.lost:>10} {pct:>6.1f}% "
                          f"{'yes' if trial.survivor else 'no':>9}", flush=True)
        print()
        for name, (marked, lost) in totals.items():
            print(f"{name}: {lost} of {marked} marked bytes lost ({100 * lost / marked if marked else 0:.1f}%)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
