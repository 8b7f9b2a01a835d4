"""The tree copies part of ``transfercore status``: one block per tree with its counts.

Tree ids carry a ``t`` (``t3``) so that they are never confused with the
single-file transfers' numbers.  A tree whose process is gone (killed,
crashed) may have published files it had not yet recorded: those are found
at the destination (the final name exists with the source's size and
modification time, which only a verified publish sets) and counted as
complete, with a note, so that the counts match what is published.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from ..errors import TransferCoreError
from ..sizes import format_size

TREE_PREFIX = "t"


def tree_id(campaign_id: int) -> str:
    return f"{TREE_PREFIX}{campaign_id}"


def campaign_docs(
    path: str | os.PathLike[str], match: str | None = None, states: set[str] | None = None
) -> list[dict[str, Any]]:
    from ..campaign import CampaignStore

    with CampaignStore(path) as store:
        out = []
        for c in store.campaigns():
            if match and match not in c.source and match not in c.destination:
                continue
            running = store.running(c)
            state = c.state
            if state == "running" and not running:
                state = "interrupted"  # its process is gone
            if states is not None and state not in states:
                continue
            counts = store.counts(c).to_dict()
            published = 0
            if not running and counts["files"].get("started"):
                published, size = _published_unrecorded(store, c)
                if published:
                    _move(counts, "started", "complete", published, size)
            out.append({
                "id": tree_id(c.id), "source": c.source, "destination": c.destination, "manifest": c.manifest,
                "state": state, "recorded_state": c.state, "message": c.message, "updated": c.updated,
                "counts": counts, "published_unrecorded": published,
                "failures": [{"path": r.entry.rel, "state": r.state.value, "message": r.message,
                              "marker": r.marker} for r in store.failures(c, limit=20)],
            })
        return out


def _move(counts: dict[str, Any], old: str, new: str, n: int, size: int) -> None:
    files, sizes = counts["files"], counts["bytes"]
    files[old] -= n
    sizes[old] = sizes.get(old, 0) - size
    if not files[old]:
        del files[old]
        sizes.pop(old, None)
    files[new] = files.get(new, 0) + n
    sizes[new] = sizes.get(new, 0) + size


def _published_unrecorded(store: Any, campaign: Any) -> tuple[int, int]:
    """Files handed out but not recorded whose final name holds the published object."""
    from ..campaign.model import FileState, Kind
    from ..campaign.walk import join
    from ..registry import open_location

    try:
        endpoint = open_location(campaign.destination)
    except TransferCoreError:
        return 0, 0  # the destination cannot be reached: the recorded counts are all there is
    count = size = 0
    try:
        for record in store.records(campaign, kinds=(Kind.FILE,), unfinished=True):
            if record.state is not FileState.STARTED:
                continue
            entry = record.entry
            try:
                info = endpoint.driver.stat(join(endpoint.path, entry.rel))
            except TransferCoreError:
                continue
            if not info.is_dir and info.size == entry.size and info.mtime_ns == entry.mtime_ns:
                count += 1
                size += entry.size
    finally:
        endpoint.driver.close()
    return count, size


def campaign_lines(docs: list[dict[str, Any]]) -> Iterator[list[str]]:
    for d in docs:
        counts = d["counts"]
        files, sizes = counts["files"], counts["bytes"]
        complete = files.get("complete", 0)
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d["updated"]))
        states = ", ".join(f"{n} {state}" for state, n in sorted(files.items()) if state != "complete")
        lines = [
            f"{d['id']:>4}  {d['state']:<11}  {complete} of {counts['total_files']} files complete "
            f"({format_size(sizes.get('complete', 0))} of {format_size(counts['total_bytes'])})  {when}",
            f"      tree {d['source']} -> {d['destination']}" + (f"  ({d['manifest']})" if d["manifest"] else ""),
            f"      {counts['dirs']} directories, {counts['links']} links" + (f"; {states}" if states else ""),
        ]
        if d["published_unrecorded"]:
            lines.append(
                f"      {d['published_unrecorded']} of the complete files were published but not yet recorded "
                "(the run was stopped first); a rerun checks their checksums and records them without writing them again"
            )
        for failure in d["failures"]:
            lines.append(f"      {failure['state']}: {failure['path']}: {failure['message']}")
        if d["message"]:
            lines.append(f"      {d['message']}")
        yield lines
