"""What spooling a small upload without ``ALLO`` costs ``serve`` and the DSI, per file.

An upload of unknown size (``STOR`` without ``ALLO``: every ``-pp`` and
third-party transfer of ``globus-url-copy``) is spooled, then written into
its driver's writer once its size is known
(``transfercore.gridftp.spool``).  This times that path for many small
files: the spool made, the file's blocks written into it as a MODE E
receiver does, the spool copied into a destination file and dropped; wall
time and the process's user and system CPU a file, medians of the rounds
with the spread.  ``--before CHECKOUT`` times another checkout's spool in
the same rounds, alternating (each in a process of its own, that checkout
first on the path).  One thread: in ``serve`` each system call also hands
the interpreter's lock to the other threads, which this does not show.

    python benchmarks/bench_spool.py --size 128KiB --files 2000 --rounds 5 --before ../old-checkout
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECEIVED = 64 * 1024  # the blocks a MODE E sender writes


class FileWriter:
    """Where the spool goes once complete: one ``pwrite`` per piece, as the POSIX writer does."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        os.pwrite(self.fd, data, offset)


def one_round(size: int, files: int) -> tuple[float, float, float]:
    """Microseconds a file: wall, user CPU, system CPU (in this process: the code on its path)."""
    from transfercore.gridftp.spool import MEMORY_FIRST, Spool

    data = memoryview(os.urandom(size))
    with tempfile.TemporaryDirectory(prefix="tc-bench-spool-") as directory:
        fd = os.open(os.path.join(directory, "destination"), os.O_RDWR | os.O_CREAT, 0o600)
        sink = FileWriter(fd, size)
        try:
            before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            for i in range(files):
                spool = Spool(directory, key=f"posix:///f{i % 64}", memory_until=MEMORY_FIRST)
                for offset in range(0, size, RECEIVED):
                    spool.write(offset, data[offset : offset + RECEIVED])
                spool.copy_into(sink, None, 0, size)
                spool.discard()
            wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
        finally:
            os.close(fd)
    return (1e6 * wall / files, 1e6 * (after.ru_utime - before.ru_utime) / files,
            1e6 * (after.ru_stime - before.ru_stime) / files)


def timed(size: int, files: int, checkout: Path | None) -> tuple[float, float, float]:
    env = dict(os.environ)
    if checkout is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(checkout), env.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, __file__, "--size", str(size), "--files", str(files), "--one"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    wall, user, system = json.loads(out)
    return wall, user, system


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="128KiB", help="bytes a file (default 128KiB, the GridFTP tree's mean)")
    ap.add_argument("--files", type=int, default=2000, help="files a round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--before", metavar="CHECKOUT", help="another checkout's spool, in the same rounds")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # one round, in this process
    args = ap.parse_args()
    from transfercore.sizes import parse_size

    size = parse_size(args.size)
    if args.one:
        print(json.dumps(one_round(size, args.files)))
        return
    ways: dict[str, Path | None] = {"this code": None}
    if args.before:
        ways["before"] = Path(args.before).resolve()
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, checkout in ways.items():  # alternating: drift hits both alike
            results[name].append(timed(size, args.files, checkout))
    print(f"{args.files} files of {size} bytes a round, {args.rounds} rounds, medians (min-max), per file:")
    for name, rows in results.items():
        walls, users, systems = (list(c) for c in zip(*rows, strict=True))
        print(f"  {name:10} {statistics.median(walls):6.1f} us ({min(walls):.1f}-{max(walls):.1f}), "
              f"CPU user {statistics.median(users):5.1f} us, system {statistics.median(systems):5.1f} us")


if __name__ == "__main__":
    main()
