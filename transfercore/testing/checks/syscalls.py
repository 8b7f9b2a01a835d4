"""Durability seen from the system calls: what durable() synced before it returned.

The power-loss clause proves durability on a FUSE file system; this clause
needs no FUSE.  It runs a writer in a child process under ``strace`` and
checks that, by the time ``durable()`` returned a marker, every file that
received bytes since the writer was opened had been through
``fsync``/``fdatasync`` after its last write and the directory of every new
name had been fsynced, wherever the driver keeps them: beside the object, in a
subdirectory or elsewhere (see :mod:`transfercore.testing.strace`).  It applies to drivers that store local
files (``local_path()``), whose durability is the kernel's to give.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

from transfercore.capabilities import RestartModel
from transfercore.ranges import RangeSet

from .. import strace
from ..clause import Clause, NotRun, Violation, require
from ..subject import Subject

INSTALL = "install strace (Debian/Ubuntu: apt-get install strace) so that the kit can see the driver's syncs"


def syncs_apply(s: Subject) -> str | None:
    if s.caps.restart is RestartModel.NONE:
        return "driver declares restart=none: it reports no markers"
    if s.driver.local_path(f"{s.base}/probe") is None:
        return "driver does not store objects as local files (its local_path() returns None)"
    return None


def check_syncs(s: Subject) -> str:
    tracer = shutil.which("strace")
    if tracer is None:
        raise NotRun(f"strace is not on PATH: {INSTALL}")
    path = s.new_path("syncs")
    local = s.driver.local_path(path)
    assert local is not None  # syncs_apply() checked it
    directory = os.path.dirname(os.path.abspath(local))
    nonce = uuid.uuid4().hex
    opening = f"/.transfercore-kit-{nonce}/open-write"
    begin, end = f"/.transfercore-kit-{nonce}/begin-durable", f"/.transfercore-kit-{nonce}/end-durable"
    seed = s.random.randrange(2**32)
    writes = [[r.start, r.end] for r in s.first_half()]
    job = {"url": str(s.location), "path": path, "size": s.size, "seed": seed, "writes": writes,
           "opening": opening, "begin": begin, "end": end}
    with tempfile.TemporaryDirectory(prefix="transfercore-strace-") as tmp:
        trace = os.path.join(tmp, "trace")
        proc = subprocess.run(
            [tracer, "-f", "-qq", "-y", "-s", "0", "-e", f"trace={strace.TRACED}", "-e", "signal=none",
             "-o", trace, sys.executable, "-m", "transfercore.testing.syncchild", json.dumps(job)],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
            # no bytecode caches written by a lazy import while the writer is open
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        text = open(trace, encoding="utf-8", errors="replace").read() if os.path.exists(trace) else ""
    if not text and ("ptrace" in proc.stderr or "Operation not permitted" in proc.stderr):
        raise NotRun(f"strace cannot trace processes here ({proc.stderr.strip()[-300:]}); allow ptrace, "
                     "e.g. run the container with --cap-add SYS_PTRACE")
    if proc.returncode != 0:
        raise Violation(f"the writer in the traced child process failed: {proc.stderr.strip()[-1500:]}")
    marker = RangeSet.parse(json.loads(proc.stdout.strip().splitlines()[-1])["marker"] or "") \
        if proc.stdout.strip() else RangeSet()
    require(bool(marker), f"durable() returned no marker after writing {len(writes)} blocks")
    calls = strace.parse(text)
    written = strace.written_files(calls, since=opening)
    if not written:
        raise NotRun("the trace shows no write system call into any file (the driver writes through "
                     "io_uring or a memory map?), so its syncs cannot be judged from the system calls; "
                     "the durable-power-loss clause still can")
    problems = strace.missing_syncs(calls, begin, end, since=opening, root=directory)
    require(not problems, f"durable() returned {marker}, yet " + "; ".join(problems))
    return (f"{len(writes)} blocks written, then durable() returned {marker} after syncing every file written "
            f"({len(written)} files: {', '.join(sorted(os.path.relpath(p, directory) for p in written))})")


CLAUSES = (
    Clause(
        "syncs",
        "For drivers storing local files, seen in the system calls (strace, no FUSE needed): before "
        "durable() returns, every file written since the writer was opened (anywhere: beside the object, "
        "in a subdirectory, elsewhere) was fsynced or fdatasynced after its last write, and the parent "
        "directory of every new name (file, directory, rename or link target) was fsynced.",
        check_syncs,
        syncs_apply,
    ),
)
