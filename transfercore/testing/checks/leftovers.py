"""No leaked partials: a writer killed before its first ``durable()`` leaves nothing for good.

A writer that dies before it made anything durable has no resume record, so
nothing will ever resume it: whatever it created (a partial file, a temporary
record) is garbage the driver must clear by itself, at the latest when the
next writer of the same object finishes.  Otherwise every interrupted
transfer leaks its partial and storage fills with orphans no listing shows.

The clause kills a writer in a child process (SIGKILL, after it wrote half
the object and before any ``durable()``), then

* opens a new writer for the same object, writes it whole and completes it:
  the storage must hold the object and nothing else that was not there
  before;
* does the same again, but the new writer writes half, takes a marker and
  aborts (which keeps its own partial, as the contract asks), and the partial
  is then discarded with ``discard_partial()``: the storage must hold nothing
  that was not there before, neither file of the dead writer nor of the new.

The storage is the tree under the scratch directory of a driver that stores
local files (files anywhere below it, subdirectories included).
"""

from __future__ import annotations

import os

from transfercore.capabilities import RestartModel
from transfercore.ranges import RangeSet

from ..clause import Clause, require
from ..subject import Subject, pattern
from .crash import child_round

Snapshot = dict[str, tuple[int, int]]


def leftovers_apply(s: Subject) -> str | None:
    if s.driver.local_path(f"{s.base}/probe") is None:
        return "driver does not store objects as local files (its local_path() returns None)"
    return None


def _snapshot(root: str) -> Snapshot:
    """Every file below ``root``: path -> (inode, size)."""
    out: Snapshot = {}
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            out[path] = (st.st_ino, st.st_size)
    return out


def _new(after: Snapshot, before: Snapshot) -> list[str]:
    return sorted(p for p, ident in after.items() if before.get(p) != ident)


def _describe(paths: list[str], root: str, dead: Snapshot) -> str:
    mark = " (the killed writer's)"
    parts = [os.path.relpath(p, root) + (mark if p in dead else "") for p in paths[:6]]
    more = f" and {len(paths) - 6} more" if len(paths) > 6 else ""
    return ", ".join(parts) + more


def check_leftovers(s: Subject) -> str:
    probe = s.driver.local_path(f"{s.base}/probe")
    assert probe is not None  # leftovers_apply() checked it
    root = os.path.dirname(os.path.abspath(probe))
    notes = []
    for ending in ("completes", "aborts"):
        path = s.new_path(f"leftovers-{ending}")
        seed = s.random.randrange(2**32)
        data = pattern(seed, s.size)
        before = _snapshot(root)
        child_round(s, path, seed, s.size, RangeSet(), s.first_half(), [], durable=False)
        killed = _snapshot(root)
        dead = {p: killed[p] for p in _new(killed, before)}
        driver = s.fresh_driver()
        writer = driver.open_write(path, s.size)
        if ending == "completes":
            s.write_ranges(writer, data, s.blocks())
            writer.complete()
            writer.close()
            final = driver.local_path(path)
            extra = [p for p in _new(_snapshot(root), before) if p != final]
            require(not extra, f"after a writer was killed before its first durable() and a new writer of "
                               f"the same object completed, the storage keeps {_describe(extra, root, dead)}")
        else:
            s.write_ranges(writer, data, s.first_half())
            if s.caps.restart is not RestartModel.NONE:
                writer.durable()
            writer.abort()
            driver.discard_partial(path)
            extra = _new(_snapshot(root), before)
            require(not extra, f"after a writer was killed before its first durable(), a new writer of the "
                               f"same object aborted and discard_partial() was called, the storage keeps "
                               f"{_describe(extra, root, dead)}")
        notes.append(f"killed writer left {len(dead)} files, gone once a new writer {ending}")
        driver.close()
    return "; ".join(notes)


CLAUSES = (
    Clause(
        "leftovers",
        "For drivers storing local files: what a writer killed before its first durable() created is gone "
        "once a new writer of the same object completes, or aborts and discard_partial() is called; "
        "nothing else new stays in the storage.",
        check_leftovers,
        leftovers_apply,
    ),
)
