import json
import os

from transfercore.cli import main
from transfercore.journal import Journal, SourceIdentity, TransferState
from transfercore.ranges import RangeSet


def test_empty_status_creates_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert main(["status"]) == 0
    assert capsys.readouterr().out.strip() == "no transfers recorded"
    assert not (tmp_path / "transfercore").exists()
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"files": [], "trees": [], "journal_damage": None}


def test_lists_states_and_durable_bytes(tmp_path, capsys):
    path = tmp_path / "j.sqlite"
    with Journal(path) as j:
        a = j.begin("posix:///a", "posix:///b", SourceIdentity(2048, 1, "", "f"), {})
        j.record_marker(a.id, RangeSet.span(0, 1024))
        j.finish(a.id, TransferState.INTERRUPTED, message="interrupted")
        b = j.begin("posix:///c", "mock://s/d", SourceIdentity(10, 1, "", "f"), {})
        j.finish(b.id, TransferState.DONE, checksum="abcd1234")
    assert main(["status", "--journal", str(path)]) == 0
    out = capsys.readouterr().out
    assert "interrupted" in out and "1.0 KiB of 2.0 KiB durable (50%)" in out
    assert "posix:///a -> posix:///b" in out and "done" in out
    assert main(["status", "--json", "--journal", str(path)]) == 0
    data = json.loads(capsys.readouterr().out)["files"]
    assert {d["state"] for d in data} == {"interrupted", "done"}
    assert [d["durable_bytes"] for d in data if d["state"] == "interrupted"] == [1024]


def test_discard_deletes_the_partial_through_the_driver_and_forgets_the_entry(tmp_path, capsys):
    from transfercore.registry import open_location

    dst = tmp_path / "out.bin"
    driver = open_location(f"posix://{dst}").driver
    writer = driver.open_write(f"{dst}", 4096)
    writer.write(0, b"x" * 1024)
    marker = writer.durable()
    writer.abort()
    assert driver.partial(str(dst)) == marker and list(tmp_path.glob(".out.bin.*"))
    path = tmp_path / "j.sqlite"
    with Journal(path) as j:
        entry = j.begin("posix:///src", f"posix://{dst}", SourceIdentity(4096, 1, "", "f"), {})
        j.record_marker(entry.id, marker)
        j.finish(entry.id, TransferState.FAILED, message="no space left")
        done = j.begin("posix:///x", "posix:///y", SourceIdentity(1, 1, "", "f"), {})
        j.finish(done.id, TransferState.DONE)
    assert main(["status", "--journal", str(path), "--state", "failed"]) == 0
    out = capsys.readouterr().out
    assert "posix:///src" in out and "posix:///x" not in out
    assert main(["status", "--journal", str(path), "--match", "/x"]) == 0
    assert "posix:///src" not in capsys.readouterr().out
    assert main(["status", "--journal", str(path), "--discard", str(entry.id)]) == 0
    assert "discarded the partial copy" in capsys.readouterr().out
    assert not list(tmp_path.glob(".out.bin.*")) and driver.partial(str(dst)).total() == 0
    assert main(["status", "--journal", str(path), "--prune"]) == 0
    assert "forgot 1 finished entry" in capsys.readouterr().out
    assert main(["status", "--journal", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["files"] == []
    assert main(["status", "--journal", str(path), "--state", "bogus"]) == 2


def _tree(path, src, dst, states):
    """A tree campaign with one file entry per (name, state, size, mtime_ns)."""
    from transfercore.campaign import CampaignStore, Entry, Kind
    from transfercore.campaign.store import Outcome

    with CampaignStore(path) as store:
        c = store.open_campaign(f"posix://{src}", f"posix://{dst}", "", {})
        store.record_walk(c, iter([Entry(name, Kind.FILE, size, mtime, 0o644, "x") for name, _, size, mtime in states]))
        store.mark_started(c, [name for name, state, _, _ in states if state.value != "pending"])
        store.record(c, [Outcome(name, state) for name, state, _, _ in states if state.value not in ("pending", "started")])
        return c


def test_one_json_shape_tree_ids_and_state_filter_covers_trees(tmp_path, capsys):
    from transfercore.campaign import FileState

    path = tmp_path / "j.sqlite"
    with Journal(path) as j:
        a = j.begin("posix:///a", "posix:///b", SourceIdentity(10, 1, "", "f"), {})
        j.finish(a.id, TransferState.INTERRUPTED)
    c = _tree(path, tmp_path / "s", tmp_path / "d", [("f", FileState.COMPLETE, 1, 1)])
    from transfercore.campaign import CampaignStore

    with CampaignStore(path) as store:
        store.finish(c, "done")
    assert main(["status", "--json", "--journal", str(path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"files", "trees", "journal_damage"}
    assert [f["id"] for f in doc["files"]] == [a.id] and [t["id"] for t in doc["trees"]] == [f"t{c.id}"]
    # a finished tree is not interrupted
    assert main(["status", "--json", "--state", "interrupted", "--journal", str(path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [f["id"] for f in doc["files"]] == [a.id] and doc["trees"] == []
    assert main(["status", "--state", "interrupted", "--journal", str(path)]) == 0
    assert "tree" not in capsys.readouterr().out
    assert main(["status", "--journal", str(path)]) == 0
    assert f"t{c.id}  done" in capsys.readouterr().out
    assert main(["status", "--journal", str(path), "--discard", "x1"]) == 2


def test_discard_tells_trees_from_files(tmp_path, capsys):
    from transfercore.campaign import CampaignStore, FileState
    from transfercore.registry import open_location

    src, dst = tmp_path / "s", tmp_path / "d"
    dst.mkdir()
    path = tmp_path / "j.sqlite"
    with Journal(path) as j:
        a = j.begin("posix:///a", "posix:///b", SourceIdentity(10, 1, "", "f"), {})
        j.finish(a.id, TransferState.DONE)
    c = _tree(path, src, dst, [("f", FileState.STARTED, 4096, 1)])
    assert c.id == a.id == 1  # the same number: only the prefix tells them apart
    driver = open_location(f"posix://{dst}").driver
    writer = driver.open_write(str(dst / "f"), 4096)
    writer.write(0, b"x" * 1024)
    writer.durable()
    writer.abort()
    assert list(dst.glob(".f.*"))
    assert main(["status", "--journal", str(path), "--discard", "t1"]) == 0
    assert "tree t1" in capsys.readouterr().out
    assert not list(dst.glob(".f.*"))
    with CampaignStore(path) as store:
        assert store.campaigns() == []
    with Journal(path) as j:
        assert [e.id for e in j.entries()] == [a.id]  # the file entry 1 is untouched
    assert main(["status", "--journal", str(path), "--discard", "1"]) == 0
    assert "forgot finished transfer 1" in capsys.readouterr().out


def test_tree_counts_include_files_published_but_not_recorded(tmp_path, capsys):
    from transfercore.campaign import FileState

    src, dst = tmp_path / "s", tmp_path / "d"
    dst.mkdir()
    published = dst / "a"
    published.write_bytes(b"x" * 5)
    os.utime(published, ns=(7_000, 7_000))
    (dst / "b").write_bytes(b"x" * 3)  # another size: not this entry's object
    path = tmp_path / "j.sqlite"
    _tree(path, src, dst, [("a", FileState.STARTED, 5, 7_000), ("b", FileState.STARTED, 5, 7_000),
                           ("c", FileState.COMPLETE, 2, 1)])
    assert main(["status", "--json", "--journal", str(path)]) == 0
    (tree,) = json.loads(capsys.readouterr().out)["trees"]
    assert tree["state"] == "interrupted"  # no process holds it
    assert tree["counts"]["files"] == {"complete": 2, "started": 1} and tree["published_unrecorded"] == 1
    assert tree["counts"]["bytes"]["complete"] == 7
    assert main(["status", "--journal", str(path)]) == 0
    out = capsys.readouterr().out
    assert "2 of 3 files complete" in out and "1 of the complete files were published but not yet recorded" in out


def test_missing_journal_directory_is_an_error(tmp_path, capsys):
    missing = tmp_path / "nonexistent" / "x" / "j.sqlite"
    assert main(["status", "--journal", str(missing)]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "nonexistent").exists()
    assert main(["copy", str(tmp_path), str(tmp_path / "o"), "--journal", str(missing)]) != 0
    assert not (tmp_path / "nonexistent").exists()


def test_damage_is_reported_by_every_later_command_until_acknowledged(tmp_path, capsys):
    path = tmp_path / "j.sqlite"
    with Journal(path) as j:
        j.begin("posix:///a", "posix:///b", SourceIdentity(10, 1, "", "f"), {})
    path.write_bytes(b"this is not a database" * 100)
    for name in ("j.sqlite-wal", "j.sqlite-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    assert main(["status", "--journal", str(path)]) == 0
    err = capsys.readouterr().err
    assert "was found damaged" in err and "--acknowledge-damage" in err
    # later commands, status and copy alike, still say it
    assert main(["status", "--json", "--journal", str(path)]) == 0
    captured = capsys.readouterr()
    assert "was found damaged" in captured.err
    damage = json.loads(captured.out)["journal_damage"]
    assert damage["moved_to"].startswith(str(path) + ".damaged-") and os.path.exists(damage["moved_to"])
    src = tmp_path / "src.bin"
    src.write_bytes(b"y" * 1000)
    assert main(["copy", str(src), str(tmp_path / "out.bin"), "--quiet", "--journal", str(path)]) == 0
    assert "was found damaged" in capsys.readouterr().err
    assert main(["status", "--acknowledge-damage", "--journal", str(path)]) == 0
    assert "acknowledged" in capsys.readouterr().out
    assert main(["status", "--json", "--journal", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and json.loads(captured.out)["journal_damage"] is None


def test_tree_store_opens_under_the_same_damage_policy(tmp_path):
    from transfercore.campaign import CampaignStore
    from transfercore.database import recorded_damage

    path = tmp_path / "j.sqlite"
    path.write_bytes(b"garbage" * 1000)
    with CampaignStore(path) as store:
        assert store.campaigns() == []
        assert store.damage is not None
    assert recorded_damage(path) is not None


def test_a_tree_copy_recovers_from_a_damaged_journal_and_says_so(tmp_path, capsys):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "f").write_bytes(b"x" * 100)
    path = tmp_path / "j.sqlite"
    path.write_bytes(b"not a database" * 100)
    assert main(["copy", "-r", str(src), str(tmp_path / "dst"), "--quiet", "--journal", str(path)]) == 0
    assert "was found damaged" in capsys.readouterr().err
    assert (tmp_path / "dst" / "a" / "f").read_bytes() == b"x" * 100
    assert main(["copy", "-r", str(src), str(tmp_path / "dst"), "--quiet", "--journal", str(path)]) == 0
    assert "was found damaged" in capsys.readouterr().err  # until acknowledged


def test_prune_forgets_finished_trees_with_their_file_records_and_keeps_the_others(tmp_path, capsys):
    from transfercore.campaign import CampaignStore, FileState

    path = tmp_path / "j.sqlite"
    with Journal(path) as j:
        done = j.begin("posix:///x", "posix:///y", SourceIdentity(1, 1, "", "f"), {})
        j.finish(done.id, TransferState.DONE)
    finished = _tree(path, tmp_path / "s1", tmp_path / "d1", [("a", FileState.COMPLETE, 1, 1), ("b", FileState.COMPLETE, 2, 1)])
    running = _tree(path, tmp_path / "s2", tmp_path / "d2", [("c", FileState.COMPLETE, 1, 1), ("d", FileState.PENDING, 1, 1)])
    failed = _tree(path, tmp_path / "s3", tmp_path / "d3", [("e", FileState.FAILED, 1, 1)])
    with CampaignStore(path) as store:
        store.finish(finished, "done")
        store.finish(failed, "failed")
    assert main(["status", "--journal", str(path), "--prune"]) == 0
    assert capsys.readouterr().out.strip() == "forgot 1 finished entry and 1 finished tree (2 file records)"
    assert main(["status", "--json", "--journal", str(path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["files"] == [] and sorted(t["id"] for t in doc["trees"]) == sorted([f"t{running.id}", f"t{failed.id}"])
    with CampaignStore(path) as store:
        assert store.counts(running).files and store.counts(failed).files
        assert store.counts(finished).files == {}
    assert main(["status", "--journal", str(path), "--prune"]) == 0
    assert capsys.readouterr().out.strip() == "forgot 0 finished entries"


def test_prune_gives_back_the_space_of_a_large_finished_tree(tmp_path, capsys, monkeypatch):
    from transfercore import database
    from transfercore.campaign import CampaignStore, FileState

    monkeypatch.setattr(database, "FULL_CHECK_UP_TO", 64 * 1024)
    path = tmp_path / "j.sqlite"
    names = [(f"dir/{i:05d}-{'x' * 60}", FileState.COMPLETE, i, 1) for i in range(5000)]
    finished = _tree(path, tmp_path / "s", tmp_path / "d", names)
    with CampaignStore(path) as store:
        store.finish(finished, "done")
    before = path.stat().st_size
    assert before > 4 * database.FULL_CHECK_UP_TO
    assert main(["status", "--journal", str(path), "--prune"]) == 0
    out = capsys.readouterr().out
    assert "forgot 0 finished entries and 1 finished tree (5000 file records)" in out
    assert f"the journal {path} shrank from" in out
    assert path.stat().st_size < before // 4
    # nothing more to give back: no second shrink
    assert main(["status", "--journal", str(path), "--prune"]) == 0
    assert "shrank" not in capsys.readouterr().out
    assert main(["status", "--json", "--journal", str(path)]) == 0  # the rewritten journal opens as before
    assert json.loads(capsys.readouterr().out)["trees"] == []
