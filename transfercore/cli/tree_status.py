"""The tree campaigns part of ``transfercore status``: one block per campaign with its counts."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from ..sizes import format_size


def campaign_docs(path: str | os.PathLike[str], match: str | None = None) -> list[dict[str, Any]]:
    from ..campaign import CampaignStore

    with CampaignStore(path) as store:
        out = []
        for c in store.campaigns():
            if match and match not in c.source and match not in c.destination:
                continue
            counts = store.counts(c)
            state = c.state
            if state == "running" and not store.running(c):
                state = "interrupted"  # its process is gone
            out.append({
                "id": c.id, "source": c.source, "destination": c.destination, "manifest": c.manifest,
                "state": state, "message": c.message, "updated": c.updated, "counts": counts.to_dict(),
                "failures": [{"path": r.entry.rel, "state": r.state.value, "message": r.message,
                              "marker": r.marker} for r in store.failures(c, limit=20)],
            })
        return out


def campaign_lines(docs: list[dict[str, Any]]) -> Iterator[list[str]]:
    for d in docs:
        counts = d["counts"]
        files, sizes = counts["files"], counts["bytes"]
        complete = files.get("complete", 0)
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d["updated"]))
        states = ", ".join(f"{n} {state}" for state, n in sorted(files.items()) if state != "complete")
        lines = [
            f"tree {d['id']:>3}  {d['state']:<11}  {complete} of {counts['total_files']} files complete "
            f"({format_size(sizes.get('complete', 0))} of {format_size(counts['total_bytes'])})  {when}",
            f"      {d['source']} -> {d['destination']}" + (f"  ({d['manifest']})" if d["manifest"] else ""),
            f"      {counts['dirs']} directories, {counts['links']} links" + (f"; {states}" if states else ""),
        ]
        for failure in d["failures"]:
            lines.append(f"      {failure['state']}: {failure['path']}: {failure['message']}")
        if d["message"]:
            lines.append(f"      {d['message']}")
        yield lines
