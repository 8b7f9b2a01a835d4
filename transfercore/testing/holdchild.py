"""A writer in a child process whose write system calls the ``concurrency`` clause holds.

``python -m transfercore.testing.holdchild JOB`` where JOB is JSON with
``url``, ``path``, ``size``, ``seed``, ``blocks`` (``[start, end]`` pairs, in
the order to write them) and ``holds`` (indexes into ``blocks``).  With the
environment variable :data:`~transfercore.testing.holdwrite.SHIM_ENV` naming
the preloaded library, it holds through that; otherwise it wraps :mod:`os`
first (before the driver is imported).

Each block at a held index is written by a thread while the next write
system call to a regular file is held after the kernel took the bytes; while
it is held, ``durable()`` runs in another thread.  One JSON line per hold
says whether a write was held, what ``durable()`` returned while the write
was held (or that it waited for the write), and which ranges' ``write()``
had returned.  A last line reports the final marker and whether the completed
object reads back as written.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

from .holdwrite import SHIM_ENV, Hold, PythonHold, ShimHold

#: How long ``durable()`` may take while a write is held before the kit lets the write go.
DURABLE_GRACE = 5.0


def _run(target: Any, box: dict[str, Any]) -> threading.Thread:
    def body() -> None:
        try:
            box["value"] = target()
        except BaseException as exc:  # noqa: BLE001 - reported by the parent
            box["error"] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def _preloaded(library: str) -> bool:
    """Whether the dynamic loader mapped ``library`` at start (a preload it could not
    load is skipped with a warning, and would hold nothing)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return any(line.rstrip().endswith(library) for line in maps)
    except OSError:
        return False


def main(argv: list[str]) -> int:
    job = json.loads(argv[0])
    library = os.environ.get(SHIM_ENV)
    hold: Hold
    if library and _preloaded(library):
        hold = ShimHold(library)
        print(json.dumps({"hold": "shim"}), flush=True)
    else:
        hold = PythonHold()
        print(json.dumps({"hold": "python"}), flush=True)
    # only now the driver and the core: a Python hold must wrap os before they bind it
    from transfercore.ranges import RangeSet
    from transfercore.registry import open_location

    from .subject import pattern

    endpoint = open_location(job["url"])
    data = pattern(job["seed"], job["size"])
    writer = endpoint.driver.open_write(job["path"], job["size"])
    returned = RangeSet()
    for index, (start, end) in enumerate(job["blocks"]):
        if index not in job["holds"]:
            writer.write(start, data[start:end])
            returned = returned | RangeSet.of((start, end))
            continue
        hold.arm()
        wrote: dict[str, Any] = {}
        writing = _run(lambda s=start, e=end: writer.write(s, data[s:e]), wrote)
        deadline = time.monotonic() + 30
        held = False
        while not held and writing.is_alive() and time.monotonic() < deadline:
            held = hold.wait(0.05)
        report: dict[str, Any] = {"block": [start, end], "held": held, "returned": str(returned)}
        if held:
            marked: dict[str, Any] = {}
            syncing = _run(writer.durable, marked)
            syncing.join(DURABLE_GRACE)
            if syncing.is_alive():
                report["durable"] = "waited for the held write"
            elif "error" in marked:
                report["durable_error"] = marked["error"]
            else:
                report["marker"] = str(marked["value"])
            hold.release()
            syncing.join(60)
        else:
            hold.release()
        writing.join(60)
        if writing.is_alive() or "error" in wrote:
            report["write_error"] = wrote.get("error", "the write did not return within 60 s")
            print(json.dumps(report), flush=True)
            return 1
        returned = returned | RangeSet.of((start, end))
        print(json.dumps(report), flush=True)
    final = writer.durable()
    writer.complete()
    writer.close()
    reader = endpoint.driver.open_read(job["path"])
    with reader:
        got = reader.read(0, reader.size) if reader.size else b""
    print(json.dumps({"final": str(final), "intact": got == data}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
