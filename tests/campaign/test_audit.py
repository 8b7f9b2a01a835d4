"""The destination check before a tree copy: skipped only where it cannot find anything."""

from __future__ import annotations

import pytest

from transfercore.campaign import CampaignStore, Entry, FileState, Kind
from transfercore.campaign.audit import Audit
from transfercore.campaign.store import Outcome
from transfercore.registry import open_location


def _audit(store, campaign, root, created_root=False):
    return Audit(store, campaign, open_location(str(root)).driver, str(root), whole_file_max=1 << 20,
                 clear_in_the_way=lambda path, found: "in the way", created_root=created_root)


def _campaign(store):
    c = store.open_campaign("s", "d", "", {})
    store.record_walk(c, iter([Entry("a", Kind.DIR), Entry("a/f", Kind.FILE, 3, 1, 0o644, "1:1"),
                               Entry("g", Kind.FILE, 3, 1, 0o644, "1:2")]))
    return c


@pytest.mark.parametrize("created_root", [False, True])
def test_a_first_run_into_a_new_destination_reads_no_entry(tmp_path, monkeypatch, created_root):
    if created_root:
        (tmp_path / "dst").mkdir()  # as the run made it just before
    with CampaignStore(tmp_path / "j.db") as store:
        c = _campaign(store)

        def no_reading(*args, **kwargs):
            raise AssertionError("every entry read for nothing")

        monkeypatch.setattr(store, "records", no_reading)
        result = _audit(store, c, tmp_path / "dst", created_root).run()
    assert (result.repaired, result.failures) == (0, [])


def test_an_existing_destination_is_checked_on_a_first_run(tmp_path):
    """It may hold hidden partial files of a run whose journal was lost: they are swept."""
    dst = tmp_path / "dst"
    dst.mkdir()
    leftover = dst / ".g.0123456789abcdef.tcpart"
    leftover.write_bytes(b"old")
    with CampaignStore(tmp_path / "j.db") as store:
        result = _audit(store, _campaign(store), dst).run()
    assert result.partials_removed == 1 and not leftover.exists()


@pytest.mark.parametrize("state", [FileState.COMPLETE, FileState.STARTED])
def test_a_destination_lost_after_files_were_handed_out_is_still_checked(tmp_path, state):
    with CampaignStore(tmp_path / "j.db") as store:
        c = _campaign(store)
        store.record(c, [Outcome("a", FileState.COMPLETE), Outcome("g", state, checksum="aa")])
        result = _audit(store, c, tmp_path / "dst").run()  # the destination was removed meanwhile
        states = {r.entry.rel: r.state for r in store.records(c)}
    assert states == {"a": FileState.PENDING, "a/f": FileState.PENDING, "g": FileState.PENDING}
    assert result.repaired == (2 if state is FileState.COMPLETE else 1)
