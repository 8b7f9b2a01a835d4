"""The destination check before a tree copy: skipped only where it cannot find anything."""

from __future__ import annotations

import pytest

from transfercore.campaign import CampaignStore, Entry, FileState, Kind
from transfercore.campaign.audit import Audit
from transfercore.campaign.store import Outcome
from transfercore.registry import open_location


def _audit(store, campaign, root):
    return Audit(store, campaign, open_location(str(root)).driver, str(root), whole_file_max=1 << 20,
                 clear_in_the_way=lambda path, found: "in the way")


def _campaign(store):
    c = store.open_campaign("s", "d", "", {})
    store.record_walk(c, iter([Entry("a", Kind.DIR), Entry("a/f", Kind.FILE, 3, 1, 0o644, "1:1"),
                               Entry("g", Kind.FILE, 3, 1, 0o644, "1:2")]))
    return c


def test_a_first_run_into_a_missing_destination_reads_no_entry(tmp_path, monkeypatch):
    with CampaignStore(tmp_path / "j.db") as store:
        c = _campaign(store)

        def no_reading(*args, **kwargs):
            raise AssertionError("every entry read for nothing")

        monkeypatch.setattr(store, "records", no_reading)
        result = _audit(store, c, tmp_path / "dst").run()
    assert (result.repaired, result.failures) == (0, [])


@pytest.mark.parametrize("state", [FileState.COMPLETE, FileState.STARTED])
def test_a_destination_lost_after_files_were_handed_out_is_still_checked(tmp_path, state):
    with CampaignStore(tmp_path / "j.db") as store:
        c = _campaign(store)
        store.record(c, [Outcome("a", FileState.COMPLETE), Outcome("g", state, checksum="aa")])
        result = _audit(store, c, tmp_path / "dst").run()  # the destination was removed meanwhile
        states = {r.entry.rel: r.state for r in store.records(c)}
    assert states == {"a": FileState.PENDING, "a/f": FileState.PENDING, "g": FileState.PENDING}
    assert result.repaired == (2 if state is FileState.COMPLETE else 1)
