"""``transfercore status``: the transfers in the journal and their durable bytes."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from ..journal import Journal, JournalEntry
from ..sizes import format_size
from ..statedir import default_journal_path


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status", help="list recorded transfers (in progress, done, failed) with their durable bytes"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--journal", metavar="PATH", help="journal file (default: $XDG_STATE_HOME/transfercore)")
    parser.set_defaults(func=run)


def _line(entry: JournalEntry) -> list[str]:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.updated))
    percent = 100.0 * entry.durable_bytes / entry.size if entry.size else 100.0
    lines = [
        f"{entry.id:>4}  {entry.state.value:<11}  {format_size(entry.durable_bytes)} of "
        f"{format_size(entry.size)} durable ({percent:.0f}%)  {when}",
        f"      {entry.source} -> {entry.destination}",
    ]
    if entry.checksum:
        lines.append(f"      {entry.checksum_algorithm.upper()} {entry.checksum}")
    if entry.message:
        lines.append(f"      {entry.message}")
    return lines


def run(args: argparse.Namespace) -> int:
    path = args.journal or default_journal_path()
    entries: list[JournalEntry] = []
    if args.journal or path.exists():
        with Journal(path) as journal:
            entries = journal.entries()
    from .tree_status import campaign_docs, campaign_lines

    campaigns = campaign_docs(path) if (args.journal or path.exists()) else []
    if args.json:
        doc: Any = [e.to_dict() for e in entries]
        if campaigns:
            doc = {"transfers": doc, "campaigns": campaigns}
        print(json.dumps(doc, indent=2, sort_keys=True))
        return 0
    if not entries and not campaigns:
        print("no transfers recorded")
        return 0
    for entry in entries:
        print("\n".join(_line(entry)))
    for lines in campaign_lines(campaigns):
        print("\n".join(lines))
    return 0
