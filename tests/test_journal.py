import sqlite3

import pytest

from transfercore.journal import Journal, JournalError, SourceIdentity, TransferState
from transfercore.ranges import RangeSet

IDENT = SourceIdentity(size=1000, mtime_ns=5, identity="1:2", fingerprint="abc")


@pytest.fixture
def journal(tmp_path):
    with Journal(tmp_path / "state" / "j.sqlite") as j:
        yield j


def test_opens_in_wal_mode_with_full_sync(tmp_path):
    path = tmp_path / "j.sqlite"
    Journal(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    j = Journal(path)
    assert j._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    j.close()


def test_default_path_is_under_xdg_state_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    with Journal() as j:
        assert j.path == tmp_path / "xdg" / "transfercore" / "journal.sqlite"
        assert j.path.exists()


def test_begin_records_everything(journal):
    entry = journal.begin("posix:///a", "posix:///b", IDENT, {"streams": 4}, checksum_algorithm="md5")
    assert entry.source == "posix:///a" and entry.destination == "posix:///b"
    assert entry.source_identity == IDENT
    assert entry.options == {"streams": 4}
    assert entry.marker == RangeSet() and entry.state is TransferState.RUNNING
    assert entry.checksum_algorithm == "md5"


def test_markers_survive_reopening(tmp_path):
    path = tmp_path / "j.sqlite"
    with Journal(path) as j:
        entry = j.begin("a", "b", IDENT, {})
        j.record_marker(entry.id, RangeSet.parse("0-100,200-300"))
    with Journal(path) as j:
        found = j.find("a", "b")
        assert found is not None
        assert found.marker == RangeSet.parse("0-100,200-300")
        assert found.durable_bytes == 200


def test_one_row_per_pair_and_fresh_begin_clears_the_marker(journal):
    first = journal.begin("a", "b", IDENT, {})
    journal.record_marker(first.id, RangeSet.span(0, 500))
    journal.finish(first.id, TransferState.INTERRUPTED, message="stopped")
    again = journal.begin("a", "b", IDENT, {})
    assert again.id == first.id
    assert again.marker == RangeSet() and again.state is TransferState.RUNNING and again.message == ""
    assert len(journal.entries()) == 1


def test_resumed_begin_keeps_the_accepted_marker_and_creation_time(journal):
    first = journal.begin("a", "b", IDENT, {})
    journal.record_marker(first.id, RangeSet.span(0, 500))
    resumed = journal.begin("a", "b", IDENT, {}, marker=RangeSet.span(0, 500))
    assert resumed.marker == RangeSet.span(0, 500)
    assert resumed.created == first.created


def test_finish_states_and_checksum(journal):
    entry = journal.begin("a", "b", IDENT, {})
    journal.finish(entry.id, TransferState.DONE, checksum="deadbeef")
    done = journal.get(entry.id)
    assert done.state is TransferState.DONE and done.checksum == "deadbeef"
    journal.finish(entry.id, TransferState.MISMATCH, message="differs")
    assert journal.get(entry.id).state is TransferState.MISMATCH
    assert journal.get(entry.id).checksum == "deadbeef"


def test_entries_filter_and_order(journal):
    a = journal.begin("a", "b", IDENT, {})
    journal.begin("c", "d", IDENT, {})
    journal.finish(a.id, TransferState.DONE)
    assert [e.source for e in journal.entries((TransferState.DONE,))] == ["a"]
    assert {e.source for e in journal} == {"a", "c"}
    assert journal.entries()[0].source == "a"  # most recently updated first


def test_to_dict_is_json_ready(journal):
    entry = journal.begin("a", "b", IDENT, {"x": 1})
    journal.record_marker(entry.id, RangeSet.span(0, 10))
    d = journal.get(entry.id).to_dict()
    assert d["marker"] == "0-10" and d["durable_bytes"] == 10 and d["state"] == "running" and d["size"] == 1000


def test_missing_row_and_damaged_row_give_clear_errors(journal):
    with pytest.raises(JournalError, match="no transfer 42"):
        journal.get(42)
    entry = journal.begin("a", "b", IDENT, {})
    journal._db.execute("UPDATE transfers SET marker='garbage' WHERE id=?", (entry.id,))
    with pytest.raises(JournalError, match="damaged") as info:
        journal.find("a", "b")
    assert "resume turned off" in str(info.value)


def test_unwritable_location_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(JournalError, match="--journal"):
        Journal(blocker / "sub" / "j.sqlite")


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "j.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(JournalError, match="newer transfercore"):
        Journal(path)


def test_identity_differences_name_what_changed():
    other = SourceIdentity(size=1001, mtime_ns=6, identity="1:3", fingerprint="xyz")
    diffs = IDENT.differences(other)
    assert any("size 1000 -> 1001" in d for d in diffs)
    assert "content changed" in diffs and "the object was replaced" in diffs
    assert IDENT.differences(IDENT) == []
    # An empty identity (a driver without one) is not a difference.
    assert IDENT.differences(SourceIdentity(1000, 5, "", "abc")) == []


def test_usable_from_several_threads(journal):
    import threading

    entry = journal.begin("a", "b", IDENT, {})
    errors = []

    def mark(n):
        try:
            journal.record_marker(entry.id, RangeSet.span(0, n))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=mark, args=(i + 1,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert journal.get(entry.id).marker.total() in range(1, 9)


def test_a_journal_locked_by_another_process_fails_promptly_saying_so(tmp_path):
    import sqlite3
    import time

    from transfercore.journal import JournalError

    path = tmp_path / "j.sqlite"
    with Journal(path):
        pass
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        with Journal(path, busy_timeout=0.3) as journal:  # opening needs no write lock
            with pytest.raises(JournalError) as info:
                journal.begin("posix:///a", "posix:///b", SourceIdentity(1, 1, "", "f"), {})
        assert time.monotonic() - started < 5
        message = str(info.value)
        assert "is locked by another process (waited 0.3 s" in message and "--journal" in message
        assert "permissions" not in message
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_prune_forgets_only_finished_entries(tmp_path):
    with Journal(tmp_path / "j.sqlite") as j:
        a = j.begin("posix:///a", "posix:///b", SourceIdentity(1, 1, "", "f"), {})
        j.finish(a.id, TransferState.DONE)
        b = j.begin("posix:///c", "posix:///d", SourceIdentity(1, 1, "", "f"), {})
        j.finish(b.id, TransferState.FAILED)
        assert j.prune() == 1
        assert [e.id for e in j.entries()] == [b.id]


def test_an_old_schema_1_journal_gains_the_new_columns(tmp_path):
    import sqlite3

    from transfercore.journal import storage

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(storage._SCHEMA)
    db.execute(
        "INSERT INTO transfers (source, destination, size, source_mtime_ns, source_identity, source_fingerprint,"
        " options, state, created, updated) VALUES ('posix:///a', 'posix:///b', 5, 1, '', 'f', '{}', 'done', 0, 0)"
    )
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    with Journal(path) as j:
        (entry,) = j.entries()
        assert entry.state is TransferState.DONE and entry.destination_size == -1 and entry.owner_pid == 0
