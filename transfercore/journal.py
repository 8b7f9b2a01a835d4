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

from .driverkit import fsync_dir
from .errors import RangeSyntaxError, TransferCoreError
from .ranges import RangeSet
from .runlock import RunLock, holder, lock_name, process_started
from .statedir import default_journal_path

SCHEMA_VERSION = 2
#: Seconds a statement waits for another process's write lock before failing.
BUSY_TIMEOUT = 5.0

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

_DAMAGED = ("file is not a database", "malformed", "corrupt")


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
    #: The driver's content version (``ObjectInfo.version``; POSIX: the change time), empty when none.
    version: str = ""

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
        elif self.version and other.version and self.version != other.version:
            # Size, mtime and the samples agree, yet the storage says the object was
            # written to since (an in-place rewrite that put its mtime back).
            out.append("it was written to since (its change time moved)")
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
    #: Process id and start time (seconds since the epoch) of the latest run.
    owner_pid: int = 0
    owner_started: float = 0.0
    #: The destination as published by a finished run (size -1 when unknown).
    destination_size: int = -1
    destination_mtime_ns: int = 0
    destination_identity: str = ""

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
            "owner_pid": self.owner_pid,
            "owner_started": self.owner_started,
        }


class Journal:
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
        #: Where a damaged journal found at :attr:`path` by this open was moved, or None.
        self.recovered_from: Path | None = None
        #: What SQLite said about the damaged journal.
        self.damage: str = ""
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            if not _is_damage(exc):
                raise self._error("open", exc) from exc
            self._move_aside(str(exc))
            try:
                self._db = self._open()
            except sqlite3.Error as again:
                raise self._error("open", again) from again
        self._lock = threading.Lock()
        #: Damage found by this or an earlier command and not yet acknowledged.
        self.unacknowledged: Damage | None = recorded_damage(self.path)

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), timeout=self.busy_timeout, check_same_thread=False, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk (WAL fsynced) before it returns, so a
            # recorded marker survives a power loss.
            db.execute("PRAGMA synchronous=FULL")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed ({check})")
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
        except BaseException:
            db.close()
            raise
        return db

    def _move_aside(self, damage: str) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        try:
            os.replace(self.path, target)
            for suffix in ("-wal", "-shm"):
                side = Path(f"{self.path}{suffix}")
                if side.exists():
                    os.replace(side, Path(f"{target}{suffix}"))
        except OSError as exc:
            raise JournalError(
                f"journal {self.path} is damaged ({damage}) and cannot be moved aside: {exc.strerror or exc}",
                hint="move it away yourself, or give another path with --journal",
            ) from exc
        self.recovered_from = target
        self.damage = damage
        _record_damage(self.path, Damage(journal=str(self.path), moved_to=str(target), reason=damage, found=time.time()))

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
                State.RUNNING.value,
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
        state: State,
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

    def prune(self, states: tuple[State, ...] = (State.DONE,)) -> int:
        """Delete the entries in ``states`` (finished ones by default); return how many."""
        marks = ",".join("?" for _ in states)
        cursor = self._execute(f"DELETE FROM transfers WHERE state IN ({marks})", tuple(s.value for s in states))
        return max(0, cursor.rowcount)

    # -- runs ----------------------------------------------------------------------

    def lock_path(self, destination: str) -> Path:
        """The lock file a run on ``destination`` holds (see :mod:`transfercore.runlock`)."""
        return self.path.parent / "locks" / lock_name(destination)

    def claim(self, source: str, destination: str) -> RunLock:
        """Hold ``destination`` for this process until the returned lock is released.

        Raises :class:`~transfercore.runlock.Busy`, naming the other run, when
        another process holds it."""
        return RunLock.acquire(self.lock_path(destination), source=source, destination=destination)

    def holder(self, destination: str) -> dict[str, Any] | None:
        """Who holds ``destination`` now (pid, start time, source), or None."""
        return holder(self.lock_path(destination))

    def effective_state(self, entry: JournalEntry) -> State:
        """The entry's state, with a run whose process is gone shown as interrupted."""
        if entry.state is State.RUNNING and self.holder(entry.destination) is None:
            return State.INTERRUPTED
        return entry.state


def journal_path(path: str | os.PathLike[str] | None, *, create_directory: bool = True) -> Path:
    """The journal's path, its directory ready: created when allowed (the
    default location always is), an error when missing otherwise."""
    resolved = Path(path) if path is not None else default_journal_path()
    parent = resolved.parent
    if path is None or create_directory:
        try:
            parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise JournalError(
                f"cannot create the journal directory {parent}: {exc.strerror or exc}",
                hint="set XDG_STATE_HOME to a writable directory, or give a path with --journal",
            ) from exc
        return resolved
    if not parent.is_dir():
        raise JournalError(
            f"the directory of the journal {resolved} does not exist" if not parent.exists()
            else f"the parent of the journal {resolved} is not a directory",
            hint="create the directory first, or give another path with --journal; a journal you name "
            "gets no missing directories created",
        )
    return resolved


@attrs.frozen
class Damage:
    """A damaged journal that was moved aside, as recorded beside the journal."""

    journal: str
    moved_to: str
    reason: str
    found: float

    def warning(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.found))
        return (
            f"the journal {self.journal} was found damaged at {when} ({self.reason}); it was moved to "
            f"{self.moved_to} and a new one started, so transfers recorded before then are not listed "
            "(partial copies still resume from the destinations' own records); "
            "'transfercore status --acknowledge-damage' stops this warning"
        )

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def damage_record_path(path: str | os.PathLike[str]) -> Path:
    """The file beside the journal that records unacknowledged damage."""
    journal = Path(path)
    return journal.with_name(journal.name + ".damage")


def recorded_damage(path: str | os.PathLike[str]) -> Damage | None:
    """The damage recorded beside the journal at ``path`` and not yet acknowledged, or None."""
    record = damage_record_path(path)
    try:
        doc = json.loads(record.read_text())
        return Damage(
            journal=str(doc["journal"]), moved_to=str(doc["moved_to"]), reason=str(doc["reason"]),
            found=float(doc["found"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # The record itself is unreadable: still damage to report, never silence.
        return Damage(journal=str(path), moved_to="(unknown)", reason=f"unreadable damage record {record}: {exc}",
                      found=0.0)


def acknowledge_damage(path: str | os.PathLike[str] | None = None) -> Damage | None:
    """Forget the recorded damage of the journal at ``path`` (the default journal when None); return it."""
    journal = Path(path) if path is not None else default_journal_path()
    damage = recorded_damage(journal)
    if damage is not None:
        try:
            damage_record_path(journal).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise JournalError(
                f"cannot remove the damage record {damage_record_path(journal)}: {exc.strerror or exc}",
                hint="check the permissions of the journal's directory",
            ) from exc
        fsync_dir(str(journal.parent))
    return damage


def _record_damage(path: Path, damage: Damage) -> None:
    """Write the damage record durably (temporary name, fsync, rename): a crash never leaves half of one."""
    record = damage_record_path(path)
    temp = record.with_name(record.name + ".tmp")
    earlier = recorded_damage(path)
    if earlier is not None:
        # Damage found again before the first was acknowledged: keep both in the words.
        damage = attrs.evolve(damage, reason=f"{damage.reason}; earlier: {earlier.reason} (moved to {earlier.moved_to})")
    try:
        with open(temp, "w") as handle:
            json.dump(damage.to_dict(), handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, record)
        fsync_dir(str(path.parent))
    except OSError as exc:
        raise JournalError(
            f"journal {path} was damaged ({damage.reason}) and moved to {damage.moved_to}, but the damage "
            f"could not be recorded in {record}: {exc.strerror or exc}",
            hint="check free space and permissions of the journal's directory",
        ) from exc


def open_with_damage_policy(path: str | os.PathLike[str] | None, *, create_directory: bool = True) -> Damage | None:
    """Open the journal file at ``path`` once under the damage policy every
    command shares (a damaged file is moved aside and the damage recorded),
    for code that opens the same database by other means (the campaign
    tables); return the unacknowledged damage, if any."""
    with Journal(path, create_directory=create_directory) as journal:
        return journal.unacknowledged


def _is_damage(exc: BaseException) -> bool:
    return any(word in str(exc).lower() for word in _DAMAGED)


def _entry(row: sqlite3.Row) -> JournalEntry:
    entry_id, source, destination = row["id"], row["source"], row["destination"]
    marker = row["marker"]
    try:
        parsed = RangeSet.parse(marker, max_ranges=10**9) if marker else RangeSet()
        state_value = State(row["state"])
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
