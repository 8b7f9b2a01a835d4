"""A writer in a child process, killed by the kit to test durability across a process crash.

``python -m transfercore.testing.crashchild JOB`` where JOB is JSON with
``url``, ``path``, ``size``, ``seed`` (of the data), ``resume`` (a range list or
""), ``synced`` and ``unsynced`` (lists of ``[start, end]`` written in that
order), and optionally ``durable`` (default true).  The child writes
``synced``, calls ``durable()`` (or, with ``durable`` false, does not: the
marker printed is then empty), prints the marker as one JSON line, writes
``unsynced``, prints ``{"holding": true}`` and waits to be killed with the
writer still open.
"""

from __future__ import annotations

import json
import sys
import time

from transfercore.ranges import RangeSet
from transfercore.registry import open_location

from .subject import pattern


def main(argv: list[str]) -> int:
    job = json.loads(argv[0])
    endpoint = open_location(job["url"])
    data = pattern(job["seed"], job["size"])
    resume = RangeSet.parse(job["resume"]) if job["resume"] else None
    writer = endpoint.driver.open_write(job["path"], job["size"], resume=resume)
    for start, end in job["synced"]:
        writer.write(start, data[start:end])
    marker = writer.durable() if job.get("durable", True) else RangeSet()
    print(json.dumps({"marker": str(marker)}), flush=True)
    for start, end in job["unsynced"]:
        writer.write(start, data[start:end])
    print(json.dumps({"holding": True}), flush=True)
    time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
