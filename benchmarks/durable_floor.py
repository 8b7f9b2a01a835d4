"""The floor a durable reply per file sets on this machine, measured beside the servers.

What any server that promises each file durable and published before its
``226`` must at least do, with no protocol, no network and no interpreter work
worth the name in the way: ``writers`` threads (one a session of ``-cc N``)
take the files of a source tree in turn and, for each, create a hidden file,
write it, ``fsync`` it, rename it to its name and ``fsync`` its directory
(the two ordered flushes the promise needs: the data before the name is
published, then the name); one ``sync`` at the end, as every timing of the
benchmarks has.  With ``durable=False`` the same without any flush but the
trailing ``sync``: what storage that promises nothing at its reply pays.

The threads spend a few tens of microseconds of Python a file, next to about
a millisecond a flush: the figure is the file system's, not the language's.
``bench_dsi.py`` and ``bench_gridftp.py`` run it in the same rounds as the
servers, so "the physical limit" in their notes is measured, not assumed.

    python benchmarks/durable_floor.py SOURCE_TREE TARGET_DIR [--writers 4]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import threading
import time
from pathlib import Path

from transfercore.driverkit import fsync_dir


def _files(source: Path) -> tuple[list[str], list[str]]:
    """(directories, files) of ``source``, relative, parents before children."""
    dirs: list[str] = []
    files: list[str] = []
    for parent, names, found in os.walk(source):
        rel = os.path.relpath(parent, source)
        names.sort()
        dirs += [os.path.normpath(os.path.join(rel, n)) for n in names]
        files += [os.path.normpath(os.path.join(rel, f)) for f in sorted(found)]
    return dirs, files


def copy_tree(source: Path, target: Path, writers: int = 4, durable: bool = True) -> tuple[float, float]:
    """Copy ``source`` into ``target`` (removed first) as described above; (seconds to a trailing
    ``sync``, CPU seconds of this process meanwhile)."""
    if target.exists():
        shutil.rmtree(target)
    dirs, files = _files(source)
    subprocess.run(["sync"], check=True)
    errors: list[BaseException] = []

    def work(first: int) -> None:
        try:
            for i in range(first, len(files), writers):
                rel = files[i]
                parent = os.path.dirname(os.path.join(target, rel))
                final = os.path.join(target, rel)
                hidden = os.path.join(parent, f".{os.path.basename(rel)}.part")
                with open(os.path.join(source, rel), "rb") as f:
                    data = f.read()
                fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    if durable:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                os.rename(hidden, final)
                if durable:
                    fsync_dir(parent)
        except BaseException as exc:  # noqa: BLE001 - raised on the caller's thread
            errors.append(exc)

    cpu0 = _cpu()
    t0 = time.perf_counter()
    target.mkdir(parents=True)
    for rel in dirs:
        os.mkdir(os.path.join(target, rel))
    if durable:
        for rel in ["", *dirs]:
            fsync_dir(os.path.dirname(os.path.join(target, rel).rstrip("/")) or "/")
    threads = [threading.Thread(target=work, args=(w,)) for w in range(max(1, writers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    subprocess.run(["sync"], check=True)
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return wall, _cpu() - cpu0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def writers_of(opts: list[str]) -> int:
    """The sessions a ``globus-url-copy`` option list runs at once (``-cc N``; 1 without)."""
    for i, opt in enumerate(opts[:-1]):
        if opt == "-cc":
            return int(opts[i + 1])
    return 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("target", type=Path)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for r in range(args.rounds):
        for durable in (True, False):
            wall, cpu = copy_tree(args.source, args.target, args.writers, durable)
            print(f"round {r + 1} {'durable' if durable else 'no flush':9} {wall:6.3f} s  CPU {cpu:.2f} s", flush=True)
    shutil.rmtree(args.target, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
