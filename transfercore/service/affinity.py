"""Which CPUs a server process keeps (``serve`` and ``serve-http --cpu-affinity``).

A process of ``serve`` runs its sessions' Python one thread at a time (the
interpreter's lock) and hands work between its event loop and its worker
threads many times a file.  When those threads run on different cores,
every hand-off of the lock wakes a thread on another core; kept on one core,
it is a switch on the same one.  Measured on a 2-core machine, one process
on one core: a 1,000-file tree 1.17x as fast with 26 % less CPU, a 1 GiB
PUT into hpss 1.46x (docs/gridftp-server.md).

``auto`` (the default) keeps each worker of ``--workers N`` on a core of its
own when there are at least N.  A single process keeps one core only on a
machine of at most :data:`SMALL` cores, where that was faster in every case
measured (small files, large uploads, several at once); on a larger one it
is left to the scheduler, because the kernel's copies of its large
transfers (about 0.7 s of CPU a GiB) would otherwise all share one core.
``off`` never narrows; a list (``0,2-3``) puts the process, or worker *i*,
on the *i*-th CPU of the list, round robin.  (``serve-http`` starts with
``off``: there one core helped many uploads and slowed one large one; and
``copy -r``, whose batches copy in C with the lock released on both cores,
ran 1.4x slower on one core, so it never narrows.)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ..errors import OptionError

AUTO = "auto"
OFF = "off"
#: The most cores on which ``auto`` keeps a single process on one of them.
SMALL = 2


def parse(value: str) -> str | tuple[int, ...]:
    """``auto``, ``off`` or a list of CPU numbers and ranges (``0,2-3``), checked."""
    text = str(value).strip().lower()
    if text in (AUTO, OFF):
        return text
    cpus: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise OptionError(
                f"--cpu-affinity {value!r}: give auto, off, or CPU numbers such as 0,2-3"
            )
        low, high = int(first), int(last) if dash else int(first)
        if high < low:
            raise OptionError(f"--cpu-affinity {value!r}: the range {part.strip()} runs backwards")
        cpus += [c for c in range(low, high + 1) if c not in cpus]
    return tuple(cpus)


def cpus_for(setting: str | tuple[int, ...], allowed: set[int], index: int | None, count: int) -> int | None:
    """The one CPU a process keeps (``index``: its worker number, ``None`` when it serves alone;
    ``count``: the workers); ``None`` leaves it where it is."""
    if setting == OFF:
        return None
    if setting == AUTO:
        ordered = sorted(allowed)
        if index is None:
            # the last: the first core of a machine often takes more of its interrupts
            return ordered[-1] if len(ordered) <= SMALL else None
        return ordered[index] if count <= len(ordered) else None
    assert isinstance(setting, tuple)
    cpu = setting[(index or 0) % len(setting)]
    if cpu not in allowed:
        listed = ",".join(str(c) for c in sorted(allowed))
        raise OptionError(
            f"--cpu-affinity: CPU {cpu} is not one this process may run on",
            hint=f"choose among {listed}, or pass auto",
        )
    return cpu


def check(setting: str | tuple[int, ...], workers: int) -> None:
    """Raise before anything starts if a worker (or the single process) could not keep its CPU."""
    getter = getattr(os, "sched_getaffinity", None)
    if getter is None:
        if isinstance(setting, tuple):
            raise OptionError("--cpu-affinity with CPU numbers needs Linux", hint="pass auto or off")
        return
    allowed = set(getter(0))
    for index in range(workers) if workers > 1 else [None]:
        cpus_for(setting, allowed, index, workers)


@contextlib.contextmanager
def kept(setting: str | tuple[int, ...], index: int | None, count: int) -> Iterator[int | None]:
    """This process on its CPU for the length of the block (entered before the process starts
    any thread: threads take their creator's CPUs); yields the CPU, or ``None`` when it was
    left where it is.  Afterwards the calling thread has its CPUs as they were: a program or a
    test that runs the command in one of its threads must get that thread back."""
    getter = getattr(os, "sched_getaffinity", None)
    setter = getattr(os, "sched_setaffinity", None)
    if getter is None or setter is None:
        check(setting, count)
        yield None
        return
    before = set(getter(0))
    cpu = cpus_for(setting, before, index, count)
    if cpu is None:
        yield None
        return
    setter(0, {cpu})
    try:
        yield cpu
    finally:
        setter(0, before)
