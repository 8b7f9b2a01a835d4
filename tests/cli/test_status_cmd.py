import json

from transfercore.cli import main
from transfercore.journal import Journal, SourceIdentity, State
from transfercore.ranges import RangeSet


def test_empty_status_creates_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert main(["status"]) == 0
    assert capsys.readouterr().out.strip() == "no transfers recorded"
    assert not (tmp_path / "transfercore").exists()
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_lists_states_and_durable_bytes(tmp_path, capsys):
    path = tmp_path / "j.sqlite"
    with Journal(path) as j:
        a = j.begin("posix:///a", "posix:///b", SourceIdentity(2048, 1, "", "f"), {})
        j.record_marker(a.id, RangeSet.span(0, 1024))
        j.finish(a.id, State.INTERRUPTED, message="interrupted")
        b = j.begin("posix:///c", "mock://s/d", SourceIdentity(10, 1, "", "f"), {})
        j.finish(b.id, State.DONE, checksum="abcd1234")
    assert main(["status", "--journal", str(path)]) == 0
    out = capsys.readouterr().out
    assert "interrupted" in out and "1.0 KiB of 2.0 KiB durable (50%)" in out
    assert "posix:///a -> posix:///b" in out and "done" in out
    assert main(["status", "--json", "--journal", str(path)]) == 0
    data = json.loads(capsys.readouterr().out)
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
        j.finish(entry.id, State.FAILED, message="no space left")
        done = j.begin("posix:///x", "posix:///y", SourceIdentity(1, 1, "", "f"), {})
        j.finish(done.id, State.DONE)
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
    assert json.loads(capsys.readouterr().out) == []
    assert main(["status", "--journal", str(path), "--state", "bogus"]) == 2
