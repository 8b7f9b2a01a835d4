"""Where a benchmark writes: the scratch directory, or a new file system of a chosen kind.

The machine's own file system may not be the kind a data mover writes to.  A
root ext4 made without a journal, for one, makes every file created soon
after a mass delete (each benchmark round's ``rm -r``) scan past the freed
inodes: ext4 looks at a freed inode's deletion time before reusing it only
when it has no journal, and that scan took a fifth of every GridFTP server's
CPU on a 1,000-file tree, the real server's too.  A journal also changes what
a flush costs.  ``--fs ext4`` (or ``xfs``) puts everything on a new file
system of that kind, made in an image file in the scratch directory and
mounted with ``-o loop`` (root needed): a file system whose journal and
allocator are the defaults'.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from transfercore.errors import TransferCoreError
from transfercore.sizes import format_size

KINDS = ("ext4", "xfs")


@contextlib.contextmanager
def scratch_fs(scratch: Path, kind: str | None, size: int, tool: str) -> Iterator[Path]:
    """``scratch`` itself (``kind`` None), or a new ``kind`` file system in
    ``scratch/fs.img`` (made as the power-loss harness makes its own) mounted
    at ``scratch/mnt`` until the block ends."""
    if kind is None:
        yield scratch
        return
    from transfercore.testing.powerloss.realfs import check_loop, make_filesystem

    image, mnt = scratch / "fs.img", scratch / "mnt"
    try:
        check_loop(kind)
        image.unlink(missing_ok=True)
        make_filesystem(image, kind, size)
    except TransferCoreError as exc:
        raise SystemExit(f"{tool} --fs {kind}: {exc}") from None
    mnt.mkdir(exist_ok=True)
    proc = subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        image.unlink(missing_ok=True)
        raise SystemExit(f"{tool} --fs {kind}: mount failed: {proc.stderr.strip() or proc.returncode}")
    print(f"{tool}: a new {kind} of {format_size(size)} in {image}, mounted at {mnt}", flush=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        image.unlink(missing_ok=True)


def describe(path: Path) -> str:
    """The kind of file system ``path`` is on, and for ext4 whether it has a journal."""
    dev = os.stat(path).st_dev
    wanted = f"{os.major(dev)}:{os.minor(dev)}"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return "a file system of unknown kind"
    for line in reversed(lines):  # the last mount of a device is the one in effect
        fields = line.split()
        if len(fields) < 10 or fields[2] != wanted or "-" not in fields:
            continue
        rest = fields[fields.index("-") + 1 :]
        kind, source = rest[0], rest[1]
        if kind != "ext4":
            return kind
        journals = Path("/proc/fs/jbd2")
        name = os.path.basename(source)
        if journals.is_dir() and not any(p.name.startswith(f"{name}-") for p in journals.iterdir()):
            return "ext4 without a journal (every file created soon after a mass delete scans the freed inodes)"
        return "ext4"
    return "a file system of unknown kind"
