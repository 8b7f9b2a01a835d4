"""A writer in a child process traced by the kit's ``syncs`` clause.

``python -m transfercore.testing.syncchild JOB`` where JOB is JSON with
``url``, ``path``, ``size``, ``seed``, ``writes`` (``[start, end]`` pairs),
``opening``, ``begin`` and ``end`` (paths the child ``access()``es just before
``open_write()`` and just before and just after ``durable()``, so that the
trace shows where the writer's life and the call start and end).
It prints the marker as one JSON line and aborts the writer.
"""

from __future__ import annotations

import json
import os
import sys

from transfercore.registry import open_location

from .subject import pattern


def main(argv: list[str]) -> int:
    job = json.loads(argv[0])
    endpoint = open_location(job["url"])
    data = pattern(job["seed"], job["size"])
    os.access(job["opening"], os.F_OK)
    writer = endpoint.driver.open_write(job["path"], job["size"])
    for start, end in job["writes"]:
        writer.write(start, data[start:end])
    os.access(job["begin"], os.F_OK)
    marker = writer.durable()
    os.access(job["end"], os.F_OK)
    print(json.dumps({"marker": str(marker)}), flush=True)
    writer.abort()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
