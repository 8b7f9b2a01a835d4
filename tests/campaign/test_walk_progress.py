"""A large tree's walk says how far it has come before ``tree-start`` (``tree-walk``),
and the command line shows it: a JSON line at once, a plain line, a bar without an end."""

from __future__ import annotations

import io
import json
from typing import Any

from transfercore.campaign import runner
from transfercore.campaign.events import FileSkipped, TreeStarted, TreeWalking
from transfercore.campaign.runner import TreeCopy, TreeOptions
from transfercore.campaign.store import CampaignStore
from transfercore.cli.tree_cmd import JsonLines, TreeLines


def test_the_walk_reports_its_progress_before_the_tree_starts(tmp_path, monkeypatch):
    src = tmp_path / "src"
    for d in range(6):
        (src / f"d{d}").mkdir(parents=True)
        for f in range(100):
            (src / f"d{d}" / f"f{f:03d}").write_bytes(b"x" * (f + 1))
    monkeypatch.setattr(runner, "TICK", 0.0)  # a report at every stretch of the walk
    events: list[Any] = []
    with CampaignStore(tmp_path / "journal.db") as store:
        copy = TreeCopy(str(src), str(tmp_path / "dst"), TreeOptions(files=2), store)
        copy.add_listener(events.append)
        assert copy.run().ok
    walks = [e for e in events if isinstance(e, TreeWalking)]
    start = next(i for i, e in enumerate(events) if isinstance(e, TreeStarted))
    assert len(walks) >= 2 and all(events.index(w) < start for w in walks)
    assert [w.entries for w in walks] == sorted({w.entries for w in walks})  # growing, each once
    started = events[start]
    assert {w.campaign for w in walks} == {started.campaign}
    last = walks[-1]
    assert last.entries <= 606 and last.files <= started.files == 600
    assert 0 < last.bytes <= started.bytes and last.files < last.entries  # the directories are entries too


def test_a_short_walk_says_nothing(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"a")
    events: list[Any] = []
    with CampaignStore(tmp_path / "journal.db") as store:
        copy = TreeCopy(str(src), str(tmp_path / "dst"), TreeOptions(files=1), store)
        copy.add_listener(events.append)
        assert copy.run().ok
    assert not [e for e in events if isinstance(e, TreeWalking)]


def test_json_lines_print_the_walk_at_once_with_its_campaign():
    out = io.StringIO()
    lines = JsonLines(out)
    lines(FileSkipped("a-fifo", "not a regular file, directory or symbolic link"))
    assert out.getvalue() == ""  # no campaign yet: it waits
    lines(TreeWalking(7, 512, 500, 12345, 0.5))
    got = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(g["event"], g["campaign"]) for g in got] == [("skipped", 7), ("tree-walk", 7)]
    assert (got[1]["entries"], got[1]["files"], got[1]["bytes"]) == (512, 500, 12345)


def test_plain_lines_say_how_far_the_walk_has_come():
    out = io.StringIO()
    lines = TreeLines(out)
    lines(TreeWalking(7, 1024, 1000, 3 * 1024 * 1024, 0.5))
    lines(TreeWalking(7, 2048, 2000, 6 * 1024 * 1024, 1.0))  # within 5 s of the last line: quiet
    assert out.getvalue().splitlines() == ["reading the tree: 1024 entries so far, 1000 files (3.0 MiB)"]


def test_the_bar_shows_the_walk_then_the_tree():
    from transfercore.cli.tree_cmd import TreeBar

    bar = TreeBar()
    bar.console.file = io.StringIO()
    bar(TreeWalking(7, 1024, 1000, 4096, 0.5))
    assert bar.walk is not None and bar.progress.tasks[0].total is None
    assert "reading the tree: 1024 entries" in bar.progress.tasks[0].fields["files"]
    bar(TreeStarted(7, "posix:///a", "posix:///b", 2000, 8192, 3, 0, 0, 0))
    assert bar.walk is None and [t.total for t in bar.progress.tasks] == [8192]
    bar.close()
