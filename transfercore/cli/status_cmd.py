"""``transfercore status``: the transfers in the journal and their durable bytes.

A run whose process is gone (killed, crashed, power cut) is shown as
interrupted, whatever its row says: no process holds its destination's run
lock any more.  ``--prune`` forgets finished entries, ``--discard ID`` deletes
a partial copy (through its destination driver) and its entry; ``ID`` is a
single-file transfer's number (``3``) or a tree's (``t3``).

``--json`` prints one object, always of the same shape::

    {"files": [...], "trees": [...], "journal_damage": null or {...}}

Damage of the journal found by any command is reported here (and by every
other command) until ``--acknowledge-damage``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..database import Damage, acknowledge_damage, reclaim, recorded_damage
from ..errors import OptionError, TransferCoreError
from ..journal import Journal, JournalEntry, TransferState
from ..registry import open_location
from ..sizes import format_size
from ..statedir import default_journal_path
from .exitcodes import ExitCode
from .tree_status import TREE_PREFIX

STATES = [s.value for s in TransferState]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status", help="list recorded transfers (in progress, done, failed) with their durable bytes"
    )
    parser.add_argument(
        "--json", action="store_true",
        help='print one JSON object: {"files": [...], "trees": [...], "journal_damage": null or {...}}',
    )
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
        metavar="ID",
        help="delete the partial copy of entry ID (a number, or t<N> for a tree) at its destination and "
        "forget the entry",
    )
    action.add_argument(
        "--acknowledge-damage",
        action="store_true",
        help="stop warning about a damaged journal that was moved aside (the moved file is kept)",
    )
    parser.set_defaults(func=run)


def _line(entry: JournalEntry, state: TransferState) -> list[str]:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.updated))
    percent = 100.0 * entry.durable_bytes / entry.size if entry.size else 100.0
    lines = [
        f"{entry.id:>4}  {state.value:<11}  {format_size(entry.durable_bytes)} of "
        f"{format_size(entry.size)} durable ({percent:.0f}%)  {when}",
        f"      {entry.source} -> {entry.destination}",
    ]
    if state is not entry.state:
        lines.append(f"      process {entry.owner_pid} ended without recording it; run the same copy again to resume")
    elif state is TransferState.RUNNING:
        lines.append(f"      running in process {entry.owner_pid}")
    if entry.checksum:
        lines.append(f"      {entry.checksum_algorithm.upper()} {entry.checksum}")
    if entry.message:
        lines.append(f"      {entry.message}")
    return lines


def _states(names: list[str] | None) -> set[TransferState] | None:
    if not names:
        return None
    out = set()
    for name in names:
        for part in name.split(","):
            try:
                out.add(TransferState(part.strip().lower()))
            except ValueError:
                raise OptionError(f"--state {part!r} is not a state", hint=f"choose from {', '.join(STATES)}") from None
    return out


def parse_id(text: str) -> tuple[str, int]:
    """``("file", N)`` for ``N``, ``("tree", N)`` for ``tN``; anything else is a usage error."""
    value = text.strip()
    kind = "file"
    if value[:1].lower() == TREE_PREFIX:
        kind, value = "tree", value[1:]
    if not value.isdigit():
        raise OptionError(
            f"--discard {text!r} is not an entry id",
            hint="give the number status shows: 3 for a single-file transfer, t3 for a tree",
        )
    return kind, int(value)


def _discard(journal: Journal, entry_id: int) -> str:
    entry = journal.get(entry_id)
    holder = journal.holder(entry.destination)
    if holder is not None:
        raise TransferCoreError(
            f"transfer {entry_id} is running in process {holder.get('pid', '?')}; it cannot be discarded now",
            hint="stop that run first, then discard it",
        )
    if entry.state is TransferState.DONE:
        journal.forget(entry_id)
        return f"forgot finished transfer {entry_id} (its destination {entry.destination} is kept)"
    endpoint = open_location(str(entry.options.get("destination_url") or entry.destination))
    try:
        endpoint.driver.discard_partial(endpoint.path)
    finally:
        endpoint.driver.close()
    journal.forget(entry_id)
    return f"discarded the partial copy of transfer {entry_id} at {entry.destination} and forgot the entry"


def _prune_trees(path: Any) -> tuple[int, int]:
    """Finished trees forgotten, and their file records: those of every tree copy are kept
    until then, and a journal that only grows makes every command slower to open it."""
    from ..campaign import CampaignStore

    with CampaignStore(path) as store:
        return store.prune()


def _discard_tree(path: Any, campaign_id: int) -> str:
    """Delete the partial copies a tree left at its destination and forget the tree
    (its published files are kept)."""
    from ..campaign import CampaignStore
    from ..campaign.model import FileState, Kind
    from ..campaign.walk import join

    name = f"{TREE_PREFIX}{campaign_id}"
    with CampaignStore(path) as store:
        found = [c for c in store.campaigns() if c.id == campaign_id]
        if not found:
            raise TransferCoreError(f"no tree {name} in the journal {path}", hint="list them with transfercore status")
        campaign = found[0]
        if store.running(campaign):
            raise TransferCoreError(
                f"tree {name} is running; it cannot be discarded now", hint="stop that run first, then discard it"
            )
        endpoint = open_location(campaign.destination)
        discarded = 0
        try:
            for record in store.records(campaign, kinds=(Kind.FILE,), unfinished=True):
                if record.state in (FileState.STARTED, FileState.PARTIAL, FileState.FAILED):
                    endpoint.driver.discard_partial(join(endpoint.path, record.entry.rel))
                    discarded += 1
        finally:
            endpoint.driver.close()
        store.forget(campaign)
    return (
        f"discarded the partial copies of {discarded} unfinished files of tree {name} at {campaign.destination} "
        "(its published files are kept) and forgot the tree"
    )


def _warn(damage: Damage | None) -> None:
    if damage is not None:
        print(f"transfercore: warning: {damage.warning()}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    wanted = _states(args.state)
    explicit = args.journal is not None
    path = args.journal or default_journal_path()
    if args.acknowledge_damage:
        damage = acknowledge_damage(path)
        print(f"acknowledged: {damage.warning().split('; ')[0]}" if damage else f"no damage recorded for {path}")
        return int(ExitCode.OK)
    discard = parse_id(args.discard) if args.discard is not None else None
    exists = explicit or path.exists()
    damage = recorded_damage(path)
    shown: list[tuple[JournalEntry, TransferState]] = []
    if not exists:
        _warn(damage)
        if discard is not None:
            raise TransferCoreError(f"no transfer {args.discard}: no journal at {path}")
    else:
        with Journal(path, create_directory=not explicit) as journal:
            damage = journal.unacknowledged
            _warn(damage)
            if discard is not None and discard[0] == "file":
                print(_discard(journal, discard[1]))
                return int(ExitCode.OK)
            if args.prune:
                count = journal.prune()
                trees, records = _prune_trees(path)
                tail = (f" and {trees} finished {'tree' if trees == 1 else 'trees'} "
                        f"({records} file {'record' if records == 1 else 'records'})") if trees else ""
                print(f"forgot {count} finished {'entry' if count == 1 else 'entries'}{tail}")
                sizes = reclaim(path)
                if sizes is not None:
                    print(f"the journal {path} shrank from {format_size(sizes[0])} to {format_size(sizes[1])}")
                return int(ExitCode.OK)
            shown = [(e, journal.effective_state(e)) for e in journal.entries()]
        if discard is not None:
            print(_discard_tree(path, discard[1]))
            return int(ExitCode.OK)
    shown = [
        (e, state)
        for e, state in shown
        if (wanted is None or state in wanted)
        and (not args.match or args.match in e.source or args.match in e.destination)
    ]
    from .tree_status import campaign_docs, campaign_lines

    tree_states = None if wanted is None else {s.value for s in wanted}
    campaigns = campaign_docs(path, args.match, tree_states) if exists else []
    if args.json:
        doc: dict[str, Any] = {
            "files": [e.to_dict() | {"state": state.value, "recorded_state": e.state.value} for e, state in shown],
            "trees": campaigns,
            "journal_damage": damage.to_dict() if damage is not None else None,
        }
        print(json.dumps(doc, indent=2, sort_keys=True))
        return int(ExitCode.OK)
    if not shown and not campaigns:
        print("no transfers recorded" if wanted is None and not args.match else "no transfers match")
        return int(ExitCode.OK)
    for entry, state in shown:
        sys.stdout.write("\n".join(_line(entry, state)) + "\n")
    for lines in campaign_lines(campaigns):
        sys.stdout.write("\n".join(lines) + "\n")
    return int(ExitCode.OK)
