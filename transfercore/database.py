"""The project's SQLite file, opened the one way every table in it shares.

The transfer journal and the campaign tables live in one database file.
Whoever opens it gets the same settings and the same damage policy: WAL mode
with ``synchronous=FULL`` (a commit is on disk before it returns, so a
recorded marker survives a power loss), a quick integrity check where
damage is possible (:func:`worth_checking`), and a file SQLite finds damaged
moved aside (its name then ends in ``.damaged-<time>``)
and the damage written down beside it, so that every later command reports
it until it is acknowledged.  Each user of the file brings only its own
schema.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from .driverkit import fsync_dir
from .errors import TransferCoreError
from .statedir import default_journal_path

#: Seconds a statement waits for another process's write lock before failing.
BUSY_TIMEOUT = 5.0

_DAMAGED = ("file is not a database", "malformed", "corrupt")

#: A file up to this size is checked whole at every open (a few milliseconds); free space
#: up to this size is also what :func:`reclaim` leaves in place (as cheap to keep as to check).
FULL_CHECK_UP_TO = 8 * 1024 * 1024
_HEADER = b"SQLite format 3\0"


class JournalError(TransferCoreError):
    """The journal cannot be opened or is damaged."""


@attrs.frozen
class Opened:
    """A database opened under the damage policy."""

    db: sqlite3.Connection
    #: Where a damaged file found by this open was moved, or None.
    recovered_from: Path | None = None
    #: What SQLite said about the damaged file.
    damage: str = ""


def open_database(
    path: Path,
    setup: Callable[[sqlite3.Connection], None],
    *,
    busy_timeout: float = BUSY_TIMEOUT,
    error: Callable[[str, sqlite3.Error], TransferCoreError],
) -> Opened:
    """Open ``path``, check it, and let ``setup`` create or upgrade its
    tables (``setup`` may raise a :class:`TransferCoreError` of its own, such
    as a schema too new).  A damaged file is moved aside and a new one
    started; any other failure is ``error("open", exc)``."""
    try:
        return Opened(_connect(path, setup, busy_timeout))
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise error("open", exc) from exc
        moved = _move_aside(path, str(exc))
        try:
            return Opened(_connect(path, setup, busy_timeout), moved, str(exc))
        except sqlite3.Error as again:
            raise error("open", again) from again


def worth_checking(path: Path) -> bool:
    """Whether an open should read the whole file to check it (``PRAGMA quick_check``).

    The check reads every page, so its cost grows with the journal's whole
    history (every campaign's entries): 15 ms for 20 MB here, on every
    command, twice for a copy.  A small file is always checked; a larger one
    only when damage is possible since it was last closed well: a
    write-ahead log is left (a process or the machine stopped while writing;
    or another process has it open), or the file is shorter than its header
    says (a file system that lost its tail).  Damage that comes to a large
    file closed well is found where SQLite reads it and reported then.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if size <= FULL_CHECK_UP_TO:
        return True
    try:
        if os.stat(f"{path}-wal").st_size:
            return True
    except FileNotFoundError:
        pass
    try:
        with open(path, "rb") as f:
            header = f.read(100)
    except OSError:
        return True
    if len(header) < 100 or not header.startswith(_HEADER) or header[24:28] != header[92:96]:
        return True  # not a database, or a header whose page count is not to be trusted
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    return size < int.from_bytes(header[28:32], "big") * page_size


def _connect(path: Path, setup: Callable[[sqlite3.Connection], None], busy_timeout: float) -> sqlite3.Connection:
    check = worth_checking(path)
    db = sqlite3.connect(str(path), timeout=busy_timeout, check_same_thread=False, isolation_level=None)
    try:
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        if check:
            found = db.execute("PRAGMA quick_check").fetchone()[0]
            if found != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed ({found})")
        setup(db)
    except BaseException:
        db.close()
        raise
    return db


def reclaim(path: str | os.PathLike[str], *, busy_timeout: float = BUSY_TIMEOUT) -> tuple[int, int] | None:
    """Give back the space of forgotten rows when it is more than :data:`FULL_CHECK_UP_TO`
    (``VACUUM``: the file rewritten without its free pages); the file's size before and
    after, or ``None`` when there was little to give back.

    SQLite keeps the pages of deleted rows for later rows; after ``status --prune``
    forgot the records of large trees, a journal would otherwise stay as large as
    its whole history.  Another process using the journal meanwhile makes this
    wait up to ``busy_timeout`` and then fail with :class:`JournalError`.
    """
    path = Path(path)
    db = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None)
    try:
        free = db.execute("PRAGMA freelist_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]
        if free <= FULL_CHECK_UP_TO:
            return None
        before = path.stat().st_size
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return before, path.stat().st_size
    except sqlite3.Error as exc:
        raise JournalError(
            f"cannot give back the free space of the journal {path}: {exc}",
            hint="another transfercore command may be using it; run `transfercore status --prune` again later",
        ) from exc
    finally:
        db.close()


def _move_aside(path: Path, damage: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    try:
        os.replace(path, target)
        for suffix in ("-wal", "-shm"):
            side = Path(f"{path}{suffix}")
            if side.exists():
                os.replace(side, Path(f"{target}{suffix}"))
    except OSError as exc:
        raise JournalError(
            f"journal {path} is damaged ({damage}) and cannot be moved aside: {exc.strerror or exc}",
            hint="move it away yourself, or give another path with --journal",
        ) from exc
    _record_damage(path, Damage(journal=str(path), moved_to=str(target), reason=damage, found=time.time()))
    return target


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


def is_damage(exc: BaseException) -> bool:
    return any(word in str(exc).lower() for word in _DAMAGED)
