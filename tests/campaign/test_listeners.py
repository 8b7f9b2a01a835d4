"""Who is told what: a listener added with ``files=False`` gets no ``file-done``
event a file, the others every one, and the journal records every file the
same either way (most as a compact row, not an object a file)."""

from __future__ import annotations

from typing import Any

from transfercore.campaign.events import FileDone, FileFailed, TreeDone, TreeStarted
from transfercore.campaign.model import FileState, Kind
from transfercore.campaign.runner import TreeCopy, TreeOptions
from transfercore.campaign.store import CampaignStore


def _tree(root, files: int) -> None:
    for i in range(files):
        d = root / f"d{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:03d}").write_bytes(b"%d" % i * (i + 1))


def test_a_listener_may_go_without_an_event_a_file(tmp_path):
    src = tmp_path / "src"
    _tree(src, 40)
    every: list[Any] = []
    summary: list[Any] = []
    with CampaignStore(tmp_path / "journal.db") as store:
        copy = TreeCopy(str(src), str(tmp_path / "dst"), TreeOptions(files=2, batch_files=8), store)
        copy.add_listener(every.append)
        copy.add_listener(summary.append, files=False)
        result = copy.run()
        assert result.ok and result.copied == 40
        records = [r for r in store.records(store.campaigns()[0], kinds=(Kind.FILE,))]
    done = [e for e in every if isinstance(e, FileDone)]
    assert sorted(e.path for e in done) == sorted(f"d{i % 3}/f{i:03d}" for i in range(40))
    assert not [e for e in summary if isinstance(e, FileDone)]
    # everything else alike, in the same order
    assert [e for e in every if not isinstance(e, FileDone)] == summary
    assert isinstance(summary[0], TreeStarted) and isinstance(summary[-1], TreeDone)
    assert summary[-1].copied == 40
    # the journal: complete, with the checksum and what the destination held
    assert len(records) == 40
    assert all(r.state is FileState.COMPLETE and r.checksum and r.dst and not r.message and not r.marker
               for r in records)
    checksums = {e.path: e.checksum for e in done}
    assert {r.entry.rel: r.checksum for r in records} == checksums


def test_a_failed_file_is_told_to_every_listener(tmp_path):
    src = tmp_path / "src"
    _tree(src, 6)
    dst = tmp_path / "dst"
    (dst / "d0" / "f000").mkdir(parents=True)  # a non-empty directory where a file belongs
    (dst / "d0" / "f000" / "keep").write_bytes(b"k")
    every: list[Any] = []
    summary: list[Any] = []
    with CampaignStore(tmp_path / "journal.db") as store:
        copy = TreeCopy(str(src), str(dst), TreeOptions(files=2), store)
        copy.add_listener(every.append)
        copy.add_listener(summary.append, files=False)
        result = copy.run()
        records = {r.entry.rel: r for r in store.records(store.campaigns()[0], kinds=(Kind.FILE,))}
    assert [rel for rel, _ in result.failed] == ["d0/f000"]
    for seen in (every, summary):
        assert [e.path for e in seen if isinstance(e, FileFailed)] == ["d0/f000"]
    assert len([e for e in every if isinstance(e, FileDone)]) == 5
    assert records["d0/f000"].state is FileState.FAILED and records["d0/f000"].message
    assert all(r.state is FileState.COMPLETE for rel, r in records.items() if rel != "d0/f000")
