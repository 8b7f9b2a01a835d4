"""The transfer journal: a durable record of every transfer and its restart marker.

One SQLite database (WAL mode, ``synchronous=FULL``, so a committed row
survives a power loss) under the user's state directory, or at a path given
by option.  One row per (source, destination) pair: running the same copy
again finds the row and resumes from its marker.

A marker is written here only after the destination driver returned it from
``Writer.durable()``; the journal never holds a byte the storage did not make
durable.
"""

from __future__ import annotations

import enum
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from .errors import RangeSyntaxError, TransferCoreError
from .ranges import RangeSet
from .statedir import default_journal_path

SCHEMA_VERSION = 1

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


class JournalError(TransferCoreError):
    """The journal cannot be opened or is damaged."""


class State(enum.Enum):
    """Where a transfer stands."""

    RUNNING = "running"
    #: Stopped by Ctrl-C, a signal or a request; resumable.
    INTERRUPTED = "interrupted"
    #: Stopped by an error; resumable once the cause is fixed.
    FAILED = "failed"
    #: All bytes written but the checksums differ; not resumed.
    MISMATCH = "mismatch"
    DONE = "done"


@attrs.frozen
class SourceIdentity:
    """What identifies the source object a partial transfer was read from."""

    size: int
    mtime_ns: int
    #: The driver's opaque identity (e.g. ``dev:ino``); empty when it has none.
    identity: str = ""
    #: A hash of a few sampled blocks, to catch in-place rewrites.
    fingerprint: str = ""

    def differences(self, other: SourceIdentity) -> list[str]:
        """Human descriptions of what differs between ``self`` (recorded) and ``other`` (now)."""
        out = []
        if self.size != other.size:
            out.append(f"size {self.size} -> {other.size}")
        if self.mtime_ns != other.mtime_ns:
            out.append("modification time changed")
        if self.identity and other.identity and self.identity != other.identity:
            out.append("the object was replaced")
        if self.fingerprint != other.fingerprint:
            out.append("content changed")
        return out


@attrs.frozen
class JournalEntry:
    """One row of the journal."""

    id: int
    source: str
    destination: str
    source_identity: SourceIdentity
    options: Mapping[str, Any]
    marker: RangeSet
    state: State
    message: str
    checksum_algorithm: str
    checksum: str
    created: float
    updated: float

    @property
    def size(self) -> int:
        return self.source_identity.size

    @property
    def durable_bytes(self) -> int:
        return self.marker.total()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "destination": self.destination,
            "size": self.size,
            "durable_bytes": self.durable_bytes,
            "marker": str(self.marker),
            "state": self.state.value,
            "message": self.message,
            "checksum_algorithm": self.checksum_algorithm,
            "checksum": self.checksum,
            "created": self.created,
            "updated": self.updated,
            "options": dict(self.options),
        }


class Journal:
    """The journal database.  Safe to use from several threads of one process;
    several processes may open the same file (SQLite locks it)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_journal_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._db = sqlite3.connect(
                str(self.path), timeout=30.0, check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk (WAL fsynced) before it returns, so a
            # recorded marker survives a power loss.
            self._db.execute("PRAGMA synchronous=FULL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise JournalError(
                    f"journal {self.path} was written by a newer transfercore (schema {version})",
                    hint="upgrade transfercore, or give another journal with --journal",
                )
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise JournalError(
                f"cannot open the journal {self.path}: {exc}",
                hint="check that the directory is writable, or give another path with --journal",
            ) from exc
        except OSError as exc:
            raise JournalError(
                f"cannot create the journal directory {self.path.parent}: {exc.strerror or exc}",
                hint="set XDG_STATE_HOME to a writable directory, or give a path with --journal",
            ) from exc
        self._lock = threading.Lock()

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
            raise JournalError(
                f"journal {self.path}: {exc}",
                hint="check free space and permissions of the journal's directory",
            ) from exc

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

    def entries(self, states: tuple[State, ...] | None = None) -> list[JournalEntry]:
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
                checksum_algorithm, checksum, created, updated)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, '', ?, ?)
            ON CONFLICT (source, destination) DO UPDATE SET
                size=excluded.size, source_mtime_ns=excluded.source_mtime_ns,
                source_identity=excluded.source_identity,
                source_fingerprint=excluded.source_fingerprint, options=excluded.options,
                marker=excluded.marker, durable_bytes=excluded.durable_bytes,
                state=excluded.state, message='', checksum_algorithm=excluded.checksum_algorithm,
                checksum='', updated=excluded.updated,
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
                State.RUNNING.value,
                checksum_algorithm,
                now,
                now,
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
        state: State,
        *,
        message: str = "",
        checksum: str | None = None,
    ) -> None:
        """Record how a run ended."""
        if checksum is None:
            self._execute(
                "UPDATE transfers SET state=?, message=?, updated=? WHERE id=?",
                (state.value, message, time.time(), entry_id),
            )
        else:
            self._execute(
                "UPDATE transfers SET state=?, message=?, checksum=?, updated=? WHERE id=?",
                (state.value, message, checksum, time.time(), entry_id),
            )

    def forget(self, entry_id: int) -> None:
        self._execute("DELETE FROM transfers WHERE id=?", (entry_id,))


def _entry(row: tuple[Any, ...]) -> JournalEntry:
    (
        entry_id,
        source,
        destination,
        size,
        mtime_ns,
        identity,
        fingerprint,
        options,
        marker,
        _durable,
        state,
        message,
        algorithm,
        checksum,
        created,
        updated,
    ) = row
    try:
        parsed = RangeSet.parse(marker, max_ranges=10**9) if marker else RangeSet()
        state_value = State(state)
        option_map = json.loads(options)
    except (RangeSyntaxError, ValueError) as exc:
        raise JournalError(
            f"journal row {entry_id} ({source} -> {destination}) is damaged: {exc}",
            hint="run the copy with --no-resume to start that transfer again",
        ) from exc
    return JournalEntry(
        id=entry_id,
        source=source,
        destination=destination,
        source_identity=SourceIdentity(size, mtime_ns, identity, fingerprint),
        options=option_map,
        marker=parsed,
        state=state_value,
        message=message,
        checksum_algorithm=algorithm,
        checksum=checksum,
        created=created,
        updated=updated,
    )
