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
