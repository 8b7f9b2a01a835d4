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

import gc

#: Allocations between two collections of the youngest generation while a
#: command of many objects runs (Python's default is 700).
MANY_OBJECTS_THRESHOLD = 10_000


def freeze_startup() -> None:
    """Exclude every object alive now from later collections (call once, after start-up)."""
    gc.collect()
    gc.freeze()


def for_many_objects() -> None:
    """Set the collector for a command that makes many short-lived objects:
    what is alive now is frozen, and the youngest generation is collected
    after :data:`MANY_OBJECTS_THRESHOLD` allocations instead of 700.  Garbage
    in cycles still goes, later (the memory it holds meanwhile is bounded by
    that many objects); the process's own choice, so only commands call it,
    never the library."""
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(MANY_OBJECTS_THRESHOLD, middle, oldest)
