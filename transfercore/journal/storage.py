"""The journal's SQLite rows: the schema, its upgrade in place, and the
queries and updates of :class:`Journal`."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..database import BUSY_TIMEOUT, Damage, JournalError, journal_path, open_database, recorded_damage
from ..errors import RangeSyntaxError
from ..ranges import RangeSet
from ..runlock import process_started
from .entry import JournalEntry, TransferState
from .identity import SourceIdentity
from .locks import RunLocks

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS transfers (
    id                  INTEGER PRIMARY KEY,
    source              TEXT NOT NULL,
    destination         TEXT NOT NULL,
    size                INTEGER NOT NULL,
    source_mtime_ns     INTEGER NOT NULL,
    source_identity     TEXT NOT NULL,
    source_fingerprint  TEXT NOT NULL,
    options             TEXT NOT NULL,
    marker              TEXT NOT NULL DEFAULT '',
    durable_bytes       INTEGER NOT NULL DEFAULT 0,
    state               TEXT NOT NULL,
    message             TEXT NOT NULL DEFAULT '',
    checksum_algorithm  TEXT NOT NULL DEFAULT '',
    checksum            TEXT NOT NULL DEFAULT '',
    created             REAL NOT NULL,
    updated             REAL NOT NULL,
    UNIQUE (source, destination)
);
"""

#: Columns added after schema 1, with their definitions (added in place on open).
_ADDED_COLUMNS = {
    # the process of the latest run, so that status can tell a dead run from a live one
    "owner_pid": "INTEGER NOT NULL DEFAULT 0",
    "owner_started": "REAL NOT NULL DEFAULT 0",
    # the destination as published, so that a rerun of a finished copy can tell it is still there
    "dest_size": "INTEGER NOT NULL DEFAULT -1",
    "dest_mtime_ns": "INTEGER NOT NULL DEFAULT 0",
    "dest_identity": "TEXT NOT NULL DEFAULT ''",
    "source_version": "TEXT NOT NULL DEFAULT ''",
}


class Journal(RunLocks):
    """The journal database.  Safe to use from several threads of one process;
    several processes may open the same file (SQLite locks it).

    A journal file that SQLite finds damaged is moved aside (its name then
    ends in ``.damaged-<time>``; :attr:`recovered_from` says where) and a new
    one is started: the destinations' own resume records still hold every
    durable partial, and the engine asks them when the journal has no row.
    The damage is also written down beside the journal (see
    :func:`recorded_damage`), so that every later command, whichever found
    it, reports it until :func:`acknowledge_damage` is called.

    ``create_directory`` creates a missing directory for the file; a path the
    user gave should be opened with ``False``, so that a typo is an error
    instead of a new, empty journal somewhere else.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        busy_timeout: float = BUSY_TIMEOUT,
        create_directory: bool = True,
    ) -> None:
        self.path = journal_path(path, create_directory=create_directory)
        self.busy_timeout = busy_timeout
        opened = open_database(self.path, self._setup, busy_timeout=busy_timeout, error=self._error)
        self._db = opened.db
        #: Where a damaged journal found at :attr:`path` by this open was moved, or None.
        self.recovered_from: Path | None = opened.recovered_from
        #: What SQLite said about the damaged journal.
        self.damage: str = opened.damage
        self._lock = threading.Lock()
        #: Damage found by this or an earlier command and not yet acknowledged.
        self.unacknowledged: Damage | None = recorded_damage(self.path)

    def _setup(self, db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal {self.path} was written by a newer transfercore (schema {version})",
                hint="upgrade transfercore, or give another journal with --journal",
            )
        if version < SCHEMA_VERSION:
            # Writes only when something is missing: opening a journal
            # another process holds locked must not need its write lock.
            db.executescript(_SCHEMA)
            have = {row[1] for row in db.execute("PRAGMA table_info(transfers)")}
            for column, definition in _ADDED_COLUMNS.items():
                if column not in have:
                    db.execute(f"ALTER TABLE transfers ADD COLUMN {column} {definition}")
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _error(self, what: str, exc: sqlite3.Error) -> JournalError:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            return JournalError(
                f"journal {self.path} is locked by another process (waited {self.busy_timeout:g} s to {what} it)",
                hint="another program holds it in a long transaction (an sqlite3 shell?); close that program, "
                "or give another journal with --journal",
            )
        if what == "open":
            return JournalError(
                f"cannot open the journal {self.path}: {exc}",
                hint="check that the directory is writable, or give another path with --journal",
            )
        return JournalError(
            f"journal {self.path}: {exc}",
            hint="check free space and permissions of the journal's directory",
        )

    # -- lifecycle -----------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            with self._lock:
                return self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise self._error("write" if not sql.lstrip().startswith("SELECT") else "read", exc) from exc

    # -- queries -------------------------------------------------------------------

    def find(self, source: str, destination: str) -> JournalEntry | None:
        row = self._execute(
            "SELECT * FROM transfers WHERE source=? AND destination=?", (source, destination)
        ).fetchone()
        return _entry(row) if row else None

    def get(self, entry_id: int) -> JournalEntry:
        row = self._execute("SELECT * FROM transfers WHERE id=?", (entry_id,)).fetchone()
        if row is None:
            raise JournalError(f"journal {self.path} has no transfer {entry_id}")
        return _entry(row)

    def entries(self, states: tuple[TransferState, ...] | None = None) -> list[JournalEntry]:
        rows = self._execute("SELECT * FROM transfers ORDER BY updated DESC, id DESC").fetchall()
        out = [_entry(r) for r in rows]
        return [e for e in out if states is None or e.state in states]

    def __iter__(self) -> Iterator[JournalEntry]:
        return iter(self.entries())

    # -- updates -------------------------------------------------------------------

    def begin(
        self,
        source: str,
        destination: str,
        identity: SourceIdentity,
        options: Mapping[str, Any],
        *,
        marker: RangeSet | None = None,
        checksum_algorithm: str = "",
    ) -> JournalEntry:
        """Start (or restart) the row of ``source`` -> ``destination``.

        ``marker`` is the marker the destination accepted for a resume; a fresh
        transfer passes none, which clears any older marker.
        """
        now = time.time()
        mark = marker or RangeSet()
        self._execute(
            """
            INSERT INTO transfers (source, destination, size, source_mtime_ns, source_identity,
                source_fingerprint, options, marker, durable_bytes, state, message,
                checksum_algorithm, checksum, created, updated, owner_pid, owner_started,
                dest_size, dest_mtime_ns, dest_identity, source_version)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, '', ?, ?, ?, ?, -1, 0, '', ?)
            ON CONFLICT (source, destination) DO UPDATE SET
                size=excluded.size, source_mtime_ns=excluded.source_mtime_ns,
                source_identity=excluded.source_identity,
                source_fingerprint=excluded.source_fingerprint, options=excluded.options,
                marker=excluded.marker, durable_bytes=excluded.durable_bytes,
                state=excluded.state, message='', checksum_algorithm=excluded.checksum_algorithm,
                checksum='', updated=excluded.updated, owner_pid=excluded.owner_pid,
                owner_started=excluded.owner_started, dest_size=-1, dest_mtime_ns=0, dest_identity='',
                source_version=excluded.source_version,
                created=CASE WHEN ? THEN transfers.created ELSE excluded.created END
            """,
            (
                source,
                destination,
                identity.size,
                identity.mtime_ns,
                identity.identity,
                identity.fingerprint,
                json.dumps(dict(options), sort_keys=True),
                str(mark),
                mark.total(),
                TransferState.RUNNING.value,
                checksum_algorithm,
                now,
                now,
                os.getpid(),
                process_started(),
                identity.version,
                1 if mark else 0,
            ),
        )
        found = self.find(source, destination)
        assert found is not None
        return found

    def record_marker(self, entry_id: int, marker: RangeSet) -> None:
        """Store a marker the destination returned as durable."""
        self._execute(
            "UPDATE transfers SET marker=?, durable_bytes=?, updated=? WHERE id=?",
            (str(marker), marker.total(), time.time(), entry_id),
        )

    def finish(
        self,
        entry_id: int,
        state: TransferState,
        *,
        message: str = "",
        checksum: str | None = None,
        destination: tuple[int, int, str] | None = None,
    ) -> None:
        """Record how a run ended; ``destination`` is the published object's
        ``(size, mtime_ns, identity)``, so that a rerun can see it is still there."""
        sets = "state=?, message=?, updated=?"
        params: list[Any] = [state.value, message, time.time()]
        if checksum is not None:
            sets += ", checksum=?"
            params.append(checksum)
        if destination is not None:
            sets += ", dest_size=?, dest_mtime_ns=?, dest_identity=?"
            params.extend(destination)
        self._execute(f"UPDATE transfers SET {sets} WHERE id=?", (*params, entry_id))

    def forget(self, entry_id: int) -> None:
        self._execute("DELETE FROM transfers WHERE id=?", (entry_id,))

    def prune(self, states: tuple[TransferState, ...] = (TransferState.DONE,)) -> int:
        """Delete the entries in ``states`` (finished ones by default); return how many."""
        marks = ",".join("?" for _ in states)
        cursor = self._execute(f"DELETE FROM transfers WHERE state IN ({marks})", tuple(s.value for s in states))
        return max(0, cursor.rowcount)


def _entry(row: sqlite3.Row) -> JournalEntry:
    entry_id, source, destination = row["id"], row["source"], row["destination"]
    marker = row["marker"]
    try:
        parsed = RangeSet.parse(marker, max_ranges=10**9) if marker else RangeSet()
        state_value = TransferState(row["state"])
        option_map = json.loads(row["options"])
    except (RangeSyntaxError, ValueError) as exc:
        raise JournalError(
            f"journal row {entry_id} ({source} -> {destination}) is damaged: {exc}",
            hint="copy with resume turned off to start that transfer again",
        ) from exc
    return JournalEntry(
        id=entry_id,
        source=source,
        destination=destination,
        source_identity=SourceIdentity(
            row["size"], row["source_mtime_ns"], row["source_identity"], row["source_fingerprint"],
            row["source_version"],
        ),
        options=option_map,
        marker=parsed,
        state=state_value,
        message=row["message"],
        checksum_algorithm=row["checksum_algorithm"],
        checksum=row["checksum"],
        created=row["created"],
        updated=row["updated"],
        owner_pid=row["owner_pid"],
        owner_started=row["owner_started"],
        destination_size=row["dest_size"],
        destination_mtime_ns=row["dest_mtime_ns"],
        destination_identity=row["dest_identity"],
    )


__all__ = ["BUSY_TIMEOUT", "Journal", "JournalError", "SCHEMA_VERSION"]
