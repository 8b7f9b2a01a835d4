"""The campaign journal: one row per tree copy, one row per entry of it.

SQLite in WAL mode with ``synchronous=FULL`` (a commit is on disk before it
returns), in the same database file as the transfer journal, in tables of
its own.  Writes come in batches, one transaction for many rows, so the cost
per entry stays flat as the campaign grows: a walk inserts its entries a few
thousand at a time, and the runner records the outcomes of whole batches of
files together.  Rows are read back in pages, never all at once.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs

from ..database import journal_path, open_database, recorded_damage
from ..errors import TransferCoreError
from .model import Entry, FileState, Kind, Record

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL,
    destination TEXT NOT NULL,
    manifest    TEXT NOT NULL DEFAULT '',
    options     TEXT NOT NULL DEFAULT '{}',
    state       TEXT NOT NULL DEFAULT 'running',
    generation  INTEGER NOT NULL DEFAULT 0,
    message     TEXT NOT NULL DEFAULT '',
    created     REAL NOT NULL,
    updated     REAL NOT NULL,
    UNIQUE (source, destination, manifest)
);
CREATE TABLE IF NOT EXISTS campaign_entries (
    campaign    INTEGER NOT NULL,
    rel         TEXT NOT NULL,
    kind        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    mode        INTEGER NOT NULL,
    identity    TEXT NOT NULL,
    link        TEXT,
    state       TEXT NOT NULL,
    marker      TEXT NOT NULL DEFAULT '',
    checksum    TEXT NOT NULL DEFAULT '',
    message     TEXT NOT NULL DEFAULT '',
    seen        INTEGER NOT NULL,
    dst         TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (campaign, rel)
) WITHOUT ROWID;
"""

#: Added after the first release: older journals get the column on open.
_MIGRATIONS = (("campaign_entries", "dst", "ALTER TABLE campaign_entries ADD COLUMN dst TEXT NOT NULL DEFAULT ''"),)

#: Rows per transaction while a walk is recorded.
WALK_BATCH = 5000
#: Rows per page when reading a campaign back.
PAGE = 2000
#: The connection's page cache, at most (KiB; taken as pages are read).  A
#: campaign's rows are read back and updated after its walk wrote them all:
#: with SQLite's default of 2 MiB, a 20,000-file tree's 9.5 MiB of rows were
#: read from the file again (15,600 ``pread`` calls, 62 MiB) and the copy took
#: 5 % more CPU.
CACHE_KIB = 64 * 1024
#: Stored values to members: a dictionary is several times faster than ``Kind(value)`` per row.
_KINDS = {k.value: k for k in Kind}
_STATES = {s.value: s for s in FileState}

_UPSERT = """
INSERT INTO campaign_entries (campaign, rel, kind, size, mtime_ns, mode, identity, link, state, seen)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)
ON CONFLICT (campaign, rel) DO UPDATE SET
    state = CASE
        WHEN kind = excluded.kind AND size = excluded.size AND mtime_ns = excluded.mtime_ns
             AND mode = excluded.mode AND identity = excluded.identity AND link IS excluded.link
        THEN state
        WHEN state = 'pending' THEN 'pending'
        -- changed after we began it: what the destination holds is stale
        ELSE 'started' END,
    checksum = CASE
        WHEN size = excluded.size AND mtime_ns = excluded.mtime_ns AND identity = excluded.identity
        THEN checksum ELSE '' END,
    dst = CASE
        WHEN kind = excluded.kind AND size = excluded.size AND mtime_ns = excluded.mtime_ns
             AND mode = excluded.mode AND identity = excluded.identity AND link IS excluded.link
        THEN dst ELSE '' END,
    kind = excluded.kind, size = excluded.size, mtime_ns = excluded.mtime_ns, mode = excluded.mode,
    identity = excluded.identity, link = excluded.link, seen = excluded.seen
"""


_ESC = "\x01"


def encode_name(name: str) -> str:
    """A path as the journal stores it: names that are not valid UTF-8 (their
    bytes held as surrogates, as ``os`` gives them) become valid text, each
    undecodable byte as ``\\x01`` and the byte's code point, ``\\x01`` itself
    doubled.  Character by character and prefix-free, so a directory's
    entries still sort together right after it."""
    if _ESC not in name and name.isascii():
        return name
    out = []
    for c in name:
        if c == _ESC:
            out.append(_ESC + _ESC)
        elif "\udc80" <= c <= "\udcff":
            out.append(_ESC + chr(ord(c) - 0xDC00))
        else:
            out.append(c)
    return "".join(out)


def decode_name(stored: str) -> str:
    """The path :func:`encode_name` stored."""
    if _ESC not in stored:
        return stored
    out = []
    it = iter(stored)
    for c in it:
        if c == _ESC:
            nxt = next(it)
            out.append(_ESC if nxt == _ESC else chr(0xDC00 + ord(nxt)))
        else:
            out.append(c)
    return "".join(out)


def _text(message: str) -> str:
    """Free text (messages quote paths) as valid UTF-8, for display only."""
    if message.isascii():  # (most: the empty message of every file done)
        return message
    return message.encode("utf-8", "backslashreplace").decode("utf-8")


def _link(target: str | None) -> str | None:
    return None if target is None else encode_name(target)


def _unlink(stored: str | None) -> str | None:
    return None if stored is None else decode_name(stored)


class CampaignError(TransferCoreError):
    """The campaign journal cannot be opened or used."""


@attrs.frozen
class Campaign:
    id: int
    source: str
    destination: str
    manifest: str
    state: str
    generation: int
    message: str
    created: float
    updated: float


@attrs.frozen
class Counts:
    """Entries of one campaign's current walk, by state, with their bytes."""

    files: Mapping[str, int]
    bytes: Mapping[str, int]
    dirs: int
    links: int

    @property
    def total_files(self) -> int:
        return sum(self.files.values())

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": dict(self.files),
            "bytes": dict(self.bytes),
            "total_files": self.total_files,
            "total_bytes": self.total_bytes,
            "dirs": self.dirs,
            "links": self.links,
        }


@attrs.frozen
class Outcome:
    """What the runner records of one entry at once."""

    rel: str
    state: FileState
    checksum: str = ""
    marker: str = ""
    message: str = ""
    #: What the destination held once the entry was published
    #: (:func:`~.audit.dst_facts`), checked by every later run.
    dst: str = ""


def _setup(db: sqlite3.Connection) -> None:
    db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    db.executescript(_SCHEMA)
    for table, column, sql in _MIGRATIONS:
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            db.execute(sql)


class CampaignStore:
    """The campaign tables.  One thread at a time (the runner's) writes."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        # The journal's file, opened under the damage policy every table of it
        # shares (a path the user named must have its directory already).
        self.path = journal_path(path, create_directory=path is None)
        self._db = open_database(self.path, _setup, busy_timeout=30.0, error=self._error).db
        self._db.row_factory = None  # the campaign code reads rows as tuples
        self.damage = recorded_damage(self.path)
        self._lock = threading.Lock()

    def _error(self, what: str, exc: sqlite3.Error) -> CampaignError:
        return CampaignError(
            f"cannot {what} the campaign journal {self.path}: {exc}",
            hint="check that the directory is writable, or give another path with --journal",
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> CampaignStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        try:
            with self._lock:
                return self._db.execute(sql, tuple(params))
        except sqlite3.Error as exc:
            raise CampaignError(f"campaign journal {self.path}: {exc}", hint="check free space and permissions") from exc

    def _many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            self._transaction(lambda db: db.executemany(sql, rows))

    def _transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """``body(db)`` in one write transaction, rolled back when it fails."""
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    result = body(self._db)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                return result
        except sqlite3.Error as exc:
            raise CampaignError(f"campaign journal {self.path}: {exc}", hint="check free space and permissions") from exc

    # -- campaigns -----------------------------------------------------------------

    def lock_path(self, destination: str) -> Path:
        """The lock file a run of the campaign into ``destination`` holds."""
        from ..runlock import lock_name

        return self.path.parent / "locks" / lock_name("tree:" + destination)

    def running(self, campaign: Campaign) -> bool:
        """Whether a live process runs this campaign now."""
        from ..runlock import holder

        return holder(self.lock_path(campaign.destination)) is not None

    def open_campaign(self, source: str, destination: str, manifest: str, options: Mapping[str, Any]) -> Campaign:
        """Find or create the campaign of this copy and start a new walk generation."""
        now = time.time()
        self._run(
            """INSERT INTO campaigns (source, destination, manifest, options, state, generation, created, updated)
               VALUES (?, ?, ?, ?, 'running', 1, ?, ?)
               ON CONFLICT (source, destination, manifest) DO UPDATE SET
                   generation = generation + 1, state = 'running', options = excluded.options,
                   message = '', updated = excluded.updated""",
            (source, destination, manifest, json.dumps(dict(options), sort_keys=True), now, now),
        )
        found = self.find(source, destination, manifest)
        assert found is not None
        return found

    def find(self, source: str, destination: str, manifest: str = "") -> Campaign | None:
        row = self._run(
            "SELECT id, source, destination, manifest, state, generation, message, created, updated "
            "FROM campaigns WHERE source=? AND destination=? AND manifest=?",
            (source, destination, manifest),
        ).fetchone()
        return Campaign(*row) if row else None

    def campaigns(self) -> list[Campaign]:
        rows = self._run(
            "SELECT id, source, destination, manifest, state, generation, message, created, updated "
            "FROM campaigns ORDER BY updated DESC, id DESC"
        ).fetchall()
        return [Campaign(*r) for r in rows]

    def finish(self, campaign: Campaign, state: str, message: str = "") -> None:
        self._run("UPDATE campaigns SET state=?, message=?, updated=? WHERE id=?", (state, _text(message), time.time(), campaign.id))

    def forget(self, campaign: Campaign) -> None:
        """Delete the campaign and its entries (``status --discard t<ID>``)."""
        self._run("DELETE FROM campaign_entries WHERE campaign=?", (campaign.id,))
        self._run("DELETE FROM campaigns WHERE id=?", (campaign.id,))

    def prune(self) -> tuple[int, int]:
        """Forget every finished (``done``) tree and its entries (``status --prune``); how many of each.

        One transaction: a rerun of a tree that opens its campaign meanwhile
        makes it ``running`` first, and it is kept; one that opens it
        afterwards starts anew, and checks the destination as it would.
        """
        def delete(db: sqlite3.Connection) -> tuple[int, int]:
            entries = db.execute(
                "DELETE FROM campaign_entries WHERE campaign IN (SELECT id FROM campaigns WHERE state='done')"
            ).rowcount
            return max(0, db.execute("DELETE FROM campaigns WHERE state='done'").rowcount), max(0, entries)

        return self._transaction(delete)

    # -- entries ---------------------------------------------------------------------

    def record_walk(self, campaign: Campaign, entries: Iterable[Entry], batch: int = WALK_BATCH) -> int:
        """Insert or refresh every entry, ``batch`` rows per transaction; return how many.

        On the walk's own thread: a thread of its own for the rows was tried,
        and cost more than it saved (each row's step in SQLite hands the
        interpreter lock to the walk and back; 0.29 s against 0.22 s for a
        20,000-file walk)."""
        # (``_value_``, the member's own attribute: ``.value`` is a descriptor call, and a
        # dictionary keyed by members calls Enum.__hash__ in Python; a row each, per file)
        rows: list[tuple[Any, ...]] = []
        count = 0
        for e in entries:
            rows.append((campaign.id, encode_name(e.rel), e.kind._value_, e.size, e.mtime_ns, e.mode,
                         e.identity, _link(e.link), campaign.generation))
            if len(rows) >= batch:
                self._many(_UPSERT, rows)
                count += len(rows)
                rows = []
        self._many(_UPSERT, rows)
        return count + len(rows)

    def record(self, campaign: Campaign, outcomes: Iterable[Outcome],
               complete: Iterable[tuple[str, str, str]] = ()) -> None:
        """Record many outcomes in one transaction; ``complete`` holds
        ``(rel, checksum, dst)`` of files complete with no marker or message
        (a tuple each instead of an :class:`Outcome`: most files of a tree)."""
        rows = [
            (o.state._value_, o.checksum, o.marker, _text(o.message), o.dst, campaign.id, encode_name(o.rel))
            for o in outcomes
        ]
        cid = campaign.id
        done = [(checksum, dst, cid, encode_name(rel)) for rel, checksum, dst in complete]
        if not rows and not done:
            return

        def update(db: sqlite3.Connection) -> None:
            if rows:
                db.executemany("UPDATE campaign_entries SET state=?, checksum=?, marker=?, message=?, dst=? "
                               "WHERE campaign=? AND rel=?", rows)
            if done:
                db.executemany("UPDATE campaign_entries SET state='complete', checksum=?, marker='', message='', "
                               "dst=? WHERE campaign=? AND rel=?", done)

        self._transaction(update)

    def set_states(self, campaign: Campaign, changes: Iterable[tuple[str, FileState]]) -> None:
        """Move entries to another state in one transaction, forgetting what
        the destination held (a rerun found it missing or changed)."""
        self._many("UPDATE campaign_entries SET state=?, dst='' WHERE campaign=? AND rel=?",
                   [(state.value, campaign.id, encode_name(rel)) for rel, state in changes])

    def reopen(self, campaign: Campaign) -> None:
        """Forget what earlier runs finished (``--no-resume``): every file is
        checked again, and one found published is proven equal or replaced."""
        self._run("UPDATE campaign_entries SET state='started', checksum='' "
                  "WHERE campaign=? AND state!='pending' AND kind='file'", (campaign.id,))
        self._run("UPDATE campaign_entries SET state='pending' WHERE campaign=? AND kind!='file'", (campaign.id,))

    def mark_started(self, campaign: Campaign, rels: Iterable[str]) -> None:
        """Before work is handed out: from now on the destination may hold partial state."""
        self._many(
            "UPDATE campaign_entries SET state='started' WHERE campaign=? AND rel=? AND state='pending'",
            [(campaign.id, encode_name(rel)) for rel in rels],
        )

    def mark_started_between(self, campaign: Campaign, first: str, last: str) -> None:
        """:meth:`mark_started` for every pending file of the current walk from
        ``first`` to ``last`` in path order: one statement for a stretch of
        files handed out in the order :meth:`records` gives them."""
        self._many(
            "UPDATE campaign_entries SET state='started' WHERE campaign=? AND seen=? AND rel>=? AND rel<=? "
            "AND kind='file' AND state='pending'",
            [(campaign.id, campaign.generation, encode_name(first), encode_name(last))],
        )

    def records(
        self,
        campaign: Campaign,
        *,
        kinds: tuple[Kind, ...] | None = None,
        unfinished: bool = False,
        descending: bool = False,
    ) -> Iterator[Record]:
        """The current walk's entries in path order (children after their
        parents; before them with ``descending``), read a page at a time."""
        where = "campaign=? AND seen=?"
        if unfinished:
            where += " AND state!='complete'"
        if kinds:
            where += " AND kind IN (" + ",".join("?" * len(kinds)) + ")"
        rows = self._pages("rel, kind, size, mtime_ns, mode, identity, link, state, marker, checksum, message, dst",
                           where, [campaign.id, campaign.generation, *(k.value for k in kinds or ())], descending)
        for rel, kind, size, mtime_ns, mode, identity, link, state, marker, checksum, message, dst in rows:
            yield Record(Entry(decode_name(rel), _KINDS[kind], size, mtime_ns, mode, identity, _unlink(link)),
                         _STATES[state],
                         marker, checksum, message, dst)

    def unfinished_files(self, campaign: Campaign) -> Iterator[tuple[str, int, int, int, str, FileState]]:
        """(rel, size, mtime_ns, mode, identity, state) of the current walk's
        files not complete, in path order, a page at a time: what a task
        needs, without a :class:`Record` per row (a tree of small files
        reads one per file while workers wait for tasks)."""
        rows = self._pages("rel, size, mtime_ns, mode, identity, state",
                           "campaign=? AND seen=? AND state!='complete' AND kind='file'",
                           [campaign.id, campaign.generation])
        for rel, size, mtime_ns, mode, identity, state in rows:
            yield decode_name(rel), size, mtime_ns, mode, identity, _STATES[state]

    def _pages(self, columns: str, where: str, params: list[Any], descending: bool = False) -> Iterator[tuple[Any, ...]]:
        """The rows of ``campaign_entries`` matching ``where``, ``rel`` first
        among ``columns``, in path order, read :data:`PAGE` rows at a time
        (each page starts after the last ``rel`` of the one before)."""
        last = "\U0010ffff" * 4 if descending else ""
        sql = (f"SELECT {columns} FROM campaign_entries WHERE {where} AND rel{'<' if descending else '>'}? "
               f"ORDER BY rel {'DESC' if descending else ''} LIMIT {PAGE}")
        while True:
            rows = self._run(sql, [*params, last]).fetchall()
            if not rows:
                return
            yield from rows
            last = rows[-1][0]

    def record_of(self, campaign: Campaign, rel: str) -> Record | None:
        """One entry of the current walk."""
        row = self._run(
            "SELECT rel, kind, size, mtime_ns, mode, identity, link, state, marker, checksum, message, dst "
            "FROM campaign_entries WHERE campaign=? AND seen=? AND rel=?",
            (campaign.id, campaign.generation, encode_name(rel)),
        ).fetchone()
        if row is None:
            return None
        r, k, s, m, mo, i, li, st, mk, c, msg, d = row
        return Record(Entry(decode_name(r), Kind(k), s, m, mo, i, _unlink(li)), FileState(st), mk, c, msg, d)

    def complete_with_facts(self, campaign: Campaign, rows: Iterable[tuple[str, str]]) -> None:
        """Mark entries complete with the destination's facts of them, in one transaction."""
        self._many("UPDATE campaign_entries SET state='complete', dst=?, message='' WHERE campaign=? AND rel=?",
                   [(facts, campaign.id, encode_name(rel)) for rel, facts in rows])

    def children(self, campaign: Campaign, parent: str) -> dict[str, str]:
        """The current walk's entries directly in directory ``parent`` ("" for
        the root): name -> kind."""
        prefix = encode_name(parent) + "/" if parent else ""
        # Everything below the directory sorts between "prefix" and "prefix"
        # with its "/" raised by one; only names without a further "/" are children.
        where = "campaign=? AND seen=?"
        params: list[Any] = [campaign.id, campaign.generation]
        if prefix:
            where += " AND rel>? AND rel<?"
            params += [prefix, prefix[:-1] + "0"]
        rows = self._run(
            f"SELECT rel, kind FROM campaign_entries WHERE {where} AND instr(substr(rel, ?), '/')=0",
            [*params, len(prefix) + 1],
        ).fetchall()
        return {decode_name(rel)[len(parent) + 1 if parent else 0:]: kind for rel, kind in rows}

    def any_handed_out(self, campaign: Campaign) -> bool:
        """Whether any entry of the campaign ever left ``pending`` (the destination may hold something of it)."""
        return self._run("SELECT 1 FROM campaign_entries WHERE campaign=? AND state!='pending' LIMIT 1",
                         (campaign.id,)).fetchone() is not None

    def counts(self, campaign: Campaign) -> Counts:
        rows = self._run(
            "SELECT kind, state, COUNT(*), COALESCE(SUM(size), 0) FROM campaign_entries "
            "WHERE campaign=? AND seen=? GROUP BY kind, state",
            (campaign.id, campaign.generation),
        ).fetchall()
        files: dict[str, int] = {}
        sizes: dict[str, int] = {}
        dirs = links = 0
        for kind, state, n, total in rows:
            if kind == Kind.FILE.value:
                files[state] = files.get(state, 0) + n
                sizes[state] = sizes.get(state, 0) + total
            elif kind == Kind.DIR.value:
                dirs += n
            else:
                links += n
        return Counts(files, sizes, dirs, links)

    def failures(self, campaign: Campaign, limit: int = 1000) -> list[Record]:
        rows = self._run(
            "SELECT rel, kind, size, mtime_ns, mode, identity, link, state, marker, checksum, message "
            "FROM campaign_entries WHERE campaign=? AND seen=? AND state IN ('failed', 'partial') "
            f"ORDER BY rel LIMIT {int(limit)}",
            (campaign.id, campaign.generation),
        ).fetchall()
        return [
            Record(Entry(decode_name(r), Kind(k), s, m, mo, i, _unlink(li)), FileState(st), mk, c, msg)
            for r, k, s, m, mo, i, li, st, mk, c, msg in rows
        ]
