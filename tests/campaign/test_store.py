import sqlite3

from transfercore.campaign import CampaignStore, Entry, FileState, Kind
from transfercore.campaign.store import Outcome


def _files(n, size=10):
    return [Entry(f"d/f{i:05d}", Kind.FILE, size, 1000 + i, 0o644, f"1:{i}") for i in range(n)]


def test_walk_is_recorded_in_batches_and_read_back_in_pages(tmp_path):
    with CampaignStore(tmp_path / "j.db") as store:
        c = store.open_campaign("posix:///s", "posix:///d", "", {})
        entries = [Entry("d", Kind.DIR), *_files(4500)]
        assert store.record_walk(c, iter(entries), batch=1000) == 4501
        rels = [r.entry.rel for r in store.records(c, kinds=(Kind.FILE,))]
        assert rels == sorted(e.rel for e in entries[1:])
        assert [r.entry.rel for r in store.records(c, kinds=(Kind.DIR,))] == ["d"]
        counts = store.counts(c)
        assert counts.files == {"pending": 4500} and counts.bytes == {"pending": 45000} and counts.dirs == 1
    mode = sqlite3.connect(tmp_path / "j.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_rerun_keeps_complete_files_and_reopens_changed_ones(tmp_path):
    with CampaignStore(tmp_path / "j.db") as store:
        c = store.open_campaign("s", "d", "", {})
        store.record_walk(c, iter(_files(3)))
        store.mark_started(c, ["d/f00000", "d/f00001", "d/f00002"])
        store.record(c, [Outcome("d/f00000", FileState.COMPLETE, checksum="aa"),
                         Outcome("d/f00001", FileState.COMPLETE, checksum="bb")])
        c2 = store.open_campaign("s", "d", "", {})
        assert c2.id == c.id and c2.generation == c.generation + 1
        changed = _files(3)
        changed[1] = Entry("d/f00001", Kind.FILE, 11, 5, 0o644, "1:1")  # new size and time
        store.record_walk(c2, iter(changed[:2] + [Entry("d/new", Kind.FILE, 1, 1, 0o644, "x")]))
        got = {r.entry.rel: (r.state, r.checksum) for r in store.records(c2)}
        # f00002 vanished from the source: not part of this run
        assert got == {
            "d/f00000": (FileState.COMPLETE, "aa"),
            "d/f00001": (FileState.STARTED, ""),
            "d/new": (FileState.PENDING, ""),
        }
        assert [r.entry.rel for r in store.records(c2, unfinished=True)] == ["d/f00001", "d/new"]
        assert [r.entry.rel for r in store.records(c2, descending=True)] == ["d/new", "d/f00001", "d/f00000"]


def test_mark_started_only_touches_pending_rows(tmp_path):
    with CampaignStore(tmp_path / "j.db") as store:
        c = store.open_campaign("s", "d", "", {})
        store.record_walk(c, iter(_files(2)))
        store.record(c, [Outcome("d/f00000", FileState.COMPLETE)])
        store.mark_started(c, ["d/f00000", "d/f00001"])
        states = {r.entry.rel: r.state for r in store.records(c)}
        assert states == {"d/f00000": FileState.COMPLETE, "d/f00001": FileState.STARTED}
        store.record(c, [Outcome("d/f00001", FileState.FAILED, message="boom")])
        assert [(r.entry.rel, r.message) for r in store.failures(c)] == [("d/f00001", "boom")]
        assert len(store.campaigns()) == 1


def test_names_that_are_not_utf8_are_stored_reversibly_and_keep_their_directory_together():
    from transfercore.campaign.store import decode_name, encode_name

    names = ["plain", "caf\udce9", "\x01x", "d\udcff/\x01\udc80", "ok-é", "\udcff\x01\x01"]
    for name in names:
        stored = encode_name(name)
        stored.encode("utf-8")  # valid text for SQLite
        assert decode_name(stored) == name
    tree = ["d\udcff", "d\udcff/a", "d\udcff/a/b", "d\udcff\x01", "d\udcff-z", "d\udcff/z"]
    ordered = sorted(tree, key=encode_name)
    inside = [i for i, n in enumerate(ordered) if n.startswith("d\udcff/")]
    assert inside == list(range(inside[0], inside[0] + len(inside)))  # contiguous
    assert ordered.index("d\udcff") < inside[0]


def test_a_journal_from_before_destination_facts_gains_the_column(tmp_path):
    import sqlite3

    from transfercore.campaign import CampaignStore

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("""CREATE TABLE campaign_entries (campaign INTEGER NOT NULL, rel TEXT NOT NULL, kind TEXT NOT NULL,
                  size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, mode INTEGER NOT NULL, identity TEXT NOT NULL,
                  link TEXT, state TEXT NOT NULL, marker TEXT NOT NULL DEFAULT '',
                  checksum TEXT NOT NULL DEFAULT '', message TEXT NOT NULL DEFAULT '', seen INTEGER NOT NULL,
                  PRIMARY KEY (campaign, rel)) WITHOUT ROWID""")
    db.execute("INSERT INTO campaign_entries (campaign, rel, kind, size, mtime_ns, mode, identity, state, seen) "
               "VALUES (1, 'f', 'file', 3, 5, 420, 'x', 'complete', 1)")
    db.commit()
    db.close()
    with CampaignStore(path) as store:
        campaign = store.open_campaign("posix:///s", "posix:///d", "", {})
        assert campaign.id == 1
        rows = sqlite3.connect(path).execute("SELECT rel, state, dst FROM campaign_entries").fetchall()
    assert rows == [("f", "complete", "")]


def test_unfinished_files_are_the_records_a_task_needs_across_pages(tmp_path):
    bad = "d/caf\udce9"  # a name that is not UTF-8, as os gives it
    with CampaignStore(tmp_path / "j.db") as store:
        c = store.open_campaign("s", "d", "", {})
        entries = [Entry("d", Kind.DIR), Entry("d/link", Kind.LINK, 0, 1, 0o777, "l", "f"), *_files(4500),
                   Entry(bad, Kind.FILE, 3, 7, 0o600, "1:x")]
        store.record_walk(c, iter(entries))
        store.record(c, [Outcome("d/f00001", FileState.COMPLETE, checksum="aa")])
        store.mark_started(c, ["d/f00002"])
        got = list(store.unfinished_files(c))
        want = [(r.entry.rel, r.entry.size, r.entry.mtime_ns, r.entry.mode, r.entry.identity, r.state)
                for r in store.records(c, kinds=(Kind.FILE,), unfinished=True)]
        assert got == want and len(got) == 4500  # 4,501 files, one complete; no directory or link
        assert (bad, 3, 7, 0o600, "1:x", FileState.PENDING) in got
        assert dict((g[0], g[5]) for g in got)["d/f00002"] is FileState.STARTED


def test_a_failed_write_stops_the_walk_with_its_error(tmp_path):
    import pytest

    from transfercore.campaign.store import CampaignError

    with CampaignStore(tmp_path / "j.db") as store:
        c = store.open_campaign("s", "d", "", {})
        calls = []
        real = store._many

        def failing_many(sql, rows):
            calls.append(len(rows))
            if len(calls) == 2:
                raise CampaignError("campaign journal j.db: disk I/O error", hint="check free space and permissions")
            real(sql, rows)

        walked = []

        def entries():
            for e in _files(5000):
                walked.append(e.rel)
                yield e

        store._many = failing_many
        with pytest.raises(CampaignError, match="disk I/O error"):
            store.record_walk(c, entries(), batch=100)
        assert len(walked) == 200  # the walk stopped at the failed transaction, not at its end
        assert store.counts(c).files == {"pending": 100}  # the first transaction's rows, no more

        # a walk that fails keeps the rows of the transactions before it
        def unreadable():
            yield from _files(250)
            raise OSError("unreadable")

        store._many = real
        with pytest.raises(OSError, match="unreadable"):
            store.record_walk(c, unreadable(), batch=100)
        assert store.counts(c).files == {"pending": 200}


def test_the_journal_keeps_a_large_campaign_in_its_page_cache(tmp_path):
    # SQLite's default (2 MiB) held a fifth of a 20,000-file tree's rows: reading
    # them back and updating them read the file again, page by page.
    from transfercore.campaign.store import CACHE_KIB

    with CampaignStore(tmp_path / "j.db") as store:
        assert store._db.execute("PRAGMA cache_size").fetchone()[0] == -CACHE_KIB
    assert CACHE_KIB >= 32 * 1024
