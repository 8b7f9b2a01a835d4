"""Does one ``syncfs(2)`` make a batch of new files durable?  Power cuts under real ext4, xfs and btrfs.

Each trial makes a fresh file system (ext4, xfs or btrfs on a loop device over an
image on the FUSE power-loss volume, :mod:`transfercore.testing.powerloss.realfs`)
and starts a worker process that writes batches of new files, each created
under a temporary name, written, renamed to its final name, and made durable
by one of these schemes before the worker reports the whole batch durable:

* ``fsync``: ``fdatasync`` of every file before its rename, then ``fsync`` of
  every directory of the batch once (the POSIX driver's default);
* ``syncfs``: nothing per file; after the batch's renames, one ``syncfs`` of
  the destination file system (called through ``ctypes``);
* ``syncfs-dirs``: the POSIX driver's ``batch_sync=syncfs`` order: one
  ``syncfs`` before the renames (data), the renames, then ``fsync`` of every
  directory once;
* ``none``: nothing (the control: it must lose files, or the trial shows nothing).

The power is cut at a random moment; the survivor is mounted (its journal
replayed) and every file the worker reported durable is checked: a file
missing or differing from what was written counts as lost.  A file under its
final name that differs from what was written counts as torn, reported or not.

    python benchmarks/powerloss_syncfs.py                       # ext4, xfs, btrfs, 12 cuts per scheme
    python benchmarks/powerloss_syncfs.py --fs ext4 --trials 40 --batch 128

Needs root, loop devices, FUSE (fuse3, mfusepy), e2fsprogs, xfsprogs and btrfs-progs.  It
prints figures (and, with --json FILE, writes them) and never fails on them.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCHEMES = ("fsync", "syncfs", "syncfs-dirs", "none")
DIRS = 4


def content(name: str, max_size: int) -> bytes:
    """What the worker writes to ``name``: a function of the name alone."""
    rng = random.Random(name)
    return rng.randbytes(rng.randint(1, max_size))


# --- the worker: runs on the file system under test -------------------------------------------


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
    finally:
        os.close(fd)


def worker(root: str, scheme: str, batch: int, max_size: int) -> None:
    """Write batches until killed; print each batch's final names once the scheme made it durable."""
    dirs = [os.path.join(root, f"d{i}") for i in range(DIRS)]
    for d in dirs:
        os.mkdir(d)
        _fsync_path(d)
    _fsync_path(root)
    print("ready", flush=True)
    n = 0
    while True:
        names = []
        for _ in range(batch):
            d = dirs[n % DIRS]
            final = os.path.join(d, f"f{n:07d}")
            tmp = os.path.join(d, f".f{n:07d}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, content(os.path.relpath(final, root), max_size))
                if scheme == "fsync":
                    os.fdatasync(fd)
            finally:
                os.close(fd)
            names.append((tmp, final))
            n += 1
        if scheme == "syncfs-dirs":
            _syncfs(root)
        for tmp, final in names:
            os.rename(tmp, final)
        if scheme in ("fsync", "syncfs-dirs"):
            for d in dirs:
                _fsync_path(d)
        elif scheme == "syncfs":
            _syncfs(root)
        print(" ".join(os.path.relpath(final, root) for _, final in names), flush=True)


# --- the trials ---------------------------------------------------------------------------------


def trial(work: Path, fstype: str, scheme: str, rng: random.Random, args: argparse.Namespace) -> dict[str, int]:
    from transfercore.testing.powerloss.realfs import RealFS

    reported: list[str] = []
    with RealFS(work / "rfs", fstype, size=args.image << 20) as fs:
        root = fs.mountpoint / "t"
        root.mkdir()
        _fsync_path(str(fs.mountpoint))
        cmd = [sys.executable, __file__, "--worker", str(root), scheme, str(args.batch), str(args.max_size)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            if first != "ready\n":
                raise RuntimeError(f"the worker did not start: {first!r} {proc.stderr.read() if proc.stderr else ''}")
            # A poll with a deadline, not a sleep: the cut comes at a random moment
            # while the worker writes, syncs and reports batches.
            deadline = time.monotonic() + rng.uniform(args.min_delay, args.max_delay)
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.005)
        finally:
            fs.cut([proc])
        assert proc.stdout is not None
        out = proc.stdout.read()  # with what readline() already buffered (communicate() would skip it)
        proc.communicate(timeout=60)
        lines = out.split("\n")[:-1]  # a line cut short by the kill is no report
        for line in lines:
            reported.extend(line.split())
        lost = 0
        for rel in reported:
            path = root / rel
            if not path.is_file() or path.read_bytes() != content(rel, args.max_size):
                lost += 1
        torn = 0
        survived = 0
        if root.is_dir():
            for d in root.iterdir():
                for f in d.iterdir():
                    if f.name.startswith("."):
                        continue
                    survived += 1
                    if f.read_bytes() != content(str(f.relative_to(root)), args.max_size):
                        torn += 1
    return {"reported": len(reported), "lost": lost, "torn": torn, "survived": survived, "root_lost": int(not root.is_dir())}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        root, scheme, batch, max_size = sys.argv[2:6]
        worker(root, scheme, int(batch), int(max_size))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fs", default="ext4,xfs,btrfs", help="file systems, comma-separated")
    ap.add_argument("--schemes", default=",".join(SCHEMES))
    ap.add_argument("--trials", type=int, default=12, help="power cuts per file system and scheme")
    ap.add_argument("--batch", type=int, default=64, help="files per durable batch")
    ap.add_argument("--max-size", type=int, default=16384, help="files are 1 B to this many bytes")
    ap.add_argument("--image", type=int, default=128, help="image size in MiB")
    ap.add_argument("--min-delay", type=float, default=0.2, help="earliest cut, seconds after the worker started")
    ap.add_argument("--max-delay", type=float, default=1.5, help="latest cut")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (loop devices, mount, FUSE)")
        return 2
    from transfercore.testing.powerloss.realfs import check_loop

    filesystems = [f for f in args.fs.split(",") if f]
    schemes = [s for s in args.schemes.split(",") if s]
    for fstype in filesystems:
        check_loop(fstype)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="powerloss-syncfs-"))
    results: dict[str, dict[str, dict[str, int]]] = {}
    print(f"batches of {args.batch} new files of 1-{args.max_size} B in {DIRS} directories, power cut "
          f"{args.min_delay}-{args.max_delay} s into the run, {args.trials} cuts each, "
          f"kernel {os.uname().release}, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{'fs':<5} {'scheme':<12} {'cuts':>4} {'reported':>9} {'lost':>6} {'cuts losing':>11} {'torn':>5} "
          f"{'survived':>9} {'s/cut':>6}")
    try:
        for fstype in filesystems:
            for scheme in schemes:
                total = {"cuts": 0, "reported": 0, "lost": 0, "cuts_losing": 0, "torn": 0, "survived": 0}
                started = time.monotonic()
                # Alternating would share nothing here: each cut is its own fresh file system.
                for _ in range(args.trials):
                    got = trial(work, fstype, scheme, rng, args)
                    total["cuts"] += 1
                    total["reported"] += got["reported"]
                    total["lost"] += got["lost"]
                    total["cuts_losing"] += int(got["lost"] > 0)
                    total["torn"] += got["torn"]
                    total["survived"] += got["survived"]
                results.setdefault(fstype, {})[scheme] = total
                per = (time.monotonic() - started) / max(1, args.trials)
                print(f"{fstype:<5} {scheme:<12} {total['cuts']:>4} {total['reported']:>9} {total['lost']:>6} "
                      f"{total['cuts_losing']:>11} {total['torn']:>5} {total['survived']:>9} {per:>6.1f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
