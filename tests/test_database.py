"""When an open reads the whole database to check it, and that a check still finds damage then."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from transfercore import database
from transfercore.database import JournalError, open_database, worth_checking


def _setup(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v BLOB)")


def _error(what: str, exc: sqlite3.Error) -> JournalError:
    return JournalError(f"cannot {what}: {exc}")


def _database(path: Path, rows: int = 400) -> None:
    """A database of about ``rows`` KiB, closed well (its write-ahead log gone)."""
    db = open_database(path, _setup, error=_error).db
    db.executemany("INSERT INTO t (v) VALUES (?)", [(os.urandom(1000),) for _ in range(rows)])
    db.close()
    assert not Path(f"{path}-wal").exists()


@pytest.fixture
def large(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A database "large" for the check (the limit lowered below its size)."""
    path = tmp_path / "j.sqlite"
    _database(path)
    monkeypatch.setattr(database, "FULL_CHECK_UP_TO", 64 * 1024)
    assert path.stat().st_size > database.FULL_CHECK_UP_TO
    return path


def test_a_small_database_is_checked_at_every_open_and_a_missing_one_not(tmp_path: Path) -> None:
    path = tmp_path / "small.sqlite"
    assert not worth_checking(path)
    _database(path, rows=10)
    assert worth_checking(path)


def test_a_large_database_closed_well_is_not_read_whole(large: Path) -> None:
    assert not worth_checking(large)


def test_a_large_database_left_with_a_write_ahead_log_is_checked(large: Path) -> None:
    writer = sqlite3.connect(str(large), isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("INSERT INTO t (v) VALUES (x'00')")
    try:
        assert Path(f"{large}-wal").stat().st_size > 0  # as a process stopped while writing leaves it
        assert worth_checking(large)
    finally:
        writer.close()
    assert not worth_checking(large)


def test_a_large_database_shorter_than_its_header_says_is_checked_and_moved_aside(large: Path) -> None:
    with open(large, "r+b") as f:
        f.truncate(large.stat().st_size // 2 + 100)
    assert worth_checking(large)
    opened = open_database(large, _setup, error=_error)
    try:
        assert opened.recovered_from is not None and opened.recovered_from.exists()
        assert "malformed" in opened.damage or "corrupt" in opened.damage
    finally:
        opened.db.close()


def test_a_large_file_that_is_no_database_is_checked(large: Path) -> None:
    with open(large, "r+b") as f:
        f.write(b"not a database at all")
    assert worth_checking(large)
