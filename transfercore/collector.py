"""How a command sets Python's cyclic garbage collector for the work it does.

A tree of small files makes a handful of short-lived objects per file (the
file's task, its result, its journal rows), nearly none of them in reference
cycles, and keeps thousands alive at once (a stretch of tasks ahead, a
transaction's rows).  At the default thresholds the collector ran about 190
times in a copy of 20,000 files, its middle generation each time going
through the thousands alive: 0.1-0.2 s, all of it holding the interpreter
lock the runner and the workers need (measured with ``gc.callbacks``).
Start-up objects (modules, classes, the driver) never become garbage; frozen,
a collection no longer goes through them at all.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

#: Allocations between two collections of the youngest generation while a
#: command of many objects runs (Python's default is 700).
MANY_OBJECTS_THRESHOLD = 10_000


def freeze_startup() -> None:
    """Exclude every object alive now from later collections (call once, after start-up)."""
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def many_objects() -> Iterator[None]:
    """The collector set for a command that makes many short-lived objects,
    while it runs: what is alive at the start is frozen, and the youngest
    generation is collected after :data:`MANY_OBJECTS_THRESHOLD` allocations
    instead of 700.  Garbage in cycles still goes, later (the memory it holds
    meanwhile is bounded by that many objects).  The process's own choice, so
    only commands use it, never the library; the collector is as it was
    afterwards (a program or a test that calls the command line in-process
    keeps its own)."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(MANY_OBJECTS_THRESHOLD, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
