"""``transfercore status``: the transfers in the journal and their durable bytes.

A run whose process is gone (killed, crashed, power cut) is shown as
interrupted, whatever its row says: no process holds its destination's run
lock any more.  ``--prune`` forgets finished entries, ``--discard ID`` deletes
a partial copy (through its destination driver) and its entry.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..errors import OptionError, TransferCoreError
from ..journal import Journal, JournalEntry, State
from ..registry import open_location
from ..sizes import format_size
from ..statedir import default_journal_path
from .exitcodes import ExitCode

STATES = [s.value for s in State]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status", help="list recorded transfers (in progress, done, failed) with their durable bytes"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--journal", metavar="PATH", help="journal file (default: $XDG_STATE_HOME/transfercore)")
    parser.add_argument(
        "--state",
        action="append",
        metavar="STATE",
        help=f"show only entries in this state (repeatable): {', '.join(STATES)}",
    )
    parser.add_argument("--match", metavar="TEXT", help="show only entries whose source or destination contains TEXT")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--prune", action="store_true", help="forget every finished (done) entry")
    action.add_argument(
        "--discard",
        type=int,
        metavar="ID",
        help="delete the partial copy of entry ID at its destination and forget the entry",
    )
    parser.set_defaults(func=run)


def _line(entry: JournalEntry, state: State) -> list[str]:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.updated))
    percent = 100.0 * entry.durable_bytes / entry.size if entry.size else 100.0
    lines = [
        f"{entry.id:>4}  {state.value:<11}  {format_size(entry.durable_bytes)} of "
        f"{format_size(entry.size)} durable ({percent:.0f}%)  {when}",
        f"      {entry.source} -> {entry.destination}",
    ]
    if state is not entry.state:
        lines.append(f"      process {entry.owner_pid} ended without recording it; run the same copy again to resume")
    elif state is State.RUNNING:
        lines.append(f"      running in process {entry.owner_pid}")
    if entry.checksum:
        lines.append(f"      {entry.checksum_algorithm.upper()} {entry.checksum}")
    if entry.message:
        lines.append(f"      {entry.message}")
    return lines


def _states(names: list[str] | None) -> set[State] | None:
    if not names:
        return None
    out = set()
    for name in names:
        for part in name.split(","):
            try:
                out.add(State(part.strip().lower()))
            except ValueError:
                raise OptionError(f"--state {part!r} is not a state", hint=f"choose from {', '.join(STATES)}") from None
    return out


def _discard(journal: Journal, entry_id: int) -> str:
    entry = journal.get(entry_id)
    holder = journal.holder(entry.destination)
    if holder is not None:
        raise TransferCoreError(
            f"transfer {entry_id} is running in process {holder.get('pid', '?')}; it cannot be discarded now",
            hint="stop that run first, then discard it",
        )
    if entry.state is State.DONE:
        journal.forget(entry_id)
        return f"forgot finished transfer {entry_id} (its destination {entry.destination} is kept)"
    endpoint = open_location(str(entry.options.get("destination_url") or entry.destination))
    try:
        endpoint.driver.discard_partial(endpoint.path)
    finally:
        endpoint.driver.close()
    journal.forget(entry_id)
    return f"discarded the partial copy of transfer {entry_id} at {entry.destination} and forgot the entry"


def run(args: argparse.Namespace) -> int:
    wanted = _states(args.state)
    path = args.journal or default_journal_path()
    if not (args.journal or path.exists()):
        if args.discard is not None:
            raise TransferCoreError(f"no transfer {args.discard}: no journal at {path}")
        shown: list[tuple[JournalEntry, State]] = []
    else:
        with Journal(path) as journal:
            if args.discard is not None:
                print(_discard(journal, args.discard))
                return int(ExitCode.OK)
            if args.prune:
                count = journal.prune()
                print(f"forgot {count} finished {'entry' if count == 1 else 'entries'}")
                return int(ExitCode.OK)
            shown = [(e, journal.effective_state(e)) for e in journal.entries()]
    shown = [
        (e, state)
        for e, state in shown
        if (wanted is None or state in wanted)
        and (not args.match or args.match in e.source or args.match in e.destination)
    ]
    if args.json:
        doc = [e.to_dict() | {"state": state.value, "recorded_state": e.state.value} for e, state in shown]
        print(json.dumps(doc, indent=2, sort_keys=True))
        return int(ExitCode.OK)
    if not shown:
        print("no transfers recorded" if wanted is None and not args.match else "no transfers match")
        return int(ExitCode.OK)
    for entry, state in shown:
        sys.stdout.write("\n".join(_line(entry, state)) + "\n")
    return int(ExitCode.OK)
