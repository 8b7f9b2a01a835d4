"""Running clauses and reporting, against the posix driver."""

from __future__ import annotations

import pytest

from transfercore.errors import TransferCoreError
from transfercore.testing.catalog import CLAUSES, by_name
from transfercore.testing.clause import Clause, Outcome
from transfercore.testing.runner import format_report, run_clause, run_kit
from transfercore.testing.subject import KitOptions


def test_every_clause_has_a_unique_name_and_a_description():
    names = [c.name for c in CLAUSES]
    assert len(names) == len(set(names))
    assert all(c.description for c in CLAUSES)
    assert {"durable", "resumable", "monotonic", "marker-sound", "rejects-unbacked", "ordered-writes",
            "atomic-publish", "checksums", "bad-inputs", "concurrency", "durable-power-loss"} <= set(names)


def test_unknown_clause_name_lists_the_known_ones():
    with pytest.raises(TransferCoreError) as info:
        by_name("nope")
    assert "durable" in str(info.value)


def test_not_applicable_comes_from_capabilities(tmp_path):
    result = run_clause(by_name("ordered-writes"), f"posix://{tmp_path}")
    assert result.outcome is Outcome.NOT_APPLICABLE
    assert "any order" in result.verdict.evidence


def test_a_check_that_raises_fails_with_the_evidence(tmp_path):
    def boom(subject):
        raise KeyError("surprise")

    result = run_clause(Clause("boom", "always breaks", boom), f"posix://{tmp_path}")
    assert result.outcome is Outcome.FAIL
    assert "unexpected KeyError" in result.verdict.evidence


def test_switching_off_power_loss_is_reported_not_passed(tmp_path):
    result = run_clause(by_name("durable-power-loss"), f"posix://{tmp_path}", KitOptions(power_loss=False))
    assert result.outcome is Outcome.DISABLED


def test_posix_without_power_loss_passes_and_report_lists_every_clause(tmp_path):
    report = run_kit(f"posix://{tmp_path}", KitOptions(power_loss=False))
    assert report.ok, format_report(report)
    text = format_report(report)
    for clause in CLAUSES:
        assert clause.name in text
    assert report.result("durable").outcome is Outcome.PASS
    assert "killed child process" in report.result("durable").verdict.evidence
    # the kit cleaned up after itself
    assert [p.name for p in tmp_path.iterdir()] == []


def test_a_granularity_the_kit_cannot_fill_is_refused_with_what_to_do(tmp_path, monkeypatch):
    from transfercore_posix.driver import PosixDriver

    from transfercore.capabilities import Capabilities
    from transfercore.errors import LocationError
    from transfercore.testing.subject import MAX_GRANULARITY, Subject

    coarse = Capabilities(marker_granularity=MAX_GRANULARITY * 2, preferred_block_size=MAX_GRANULARITY * 2)
    monkeypatch.setattr(PosixDriver, "capabilities", lambda self: coarse)
    with pytest.raises(LocationError, match="only every 33554432 bytes") as info:
        Subject(f"posix://{tmp_path}")
    # no option of this driver helps, and the hint does not invent one
    assert "a URL option that makes the driver's restart points closer together" in str(info.value)


def test_the_granularity_hint_names_an_option_value_the_driver_accepts():
    from transfercore.location import parse_location
    from transfercore.registry import open_location
    from transfercore.testing.subject import MAX_GRANULARITY, granularity_hint

    hint = granularity_hint(parse_location("hpss:///scratch"))
    url = hint.rsplit("e.g. ", 1)[1]
    assert url.startswith("hpss:///scratch?segment=")
    caps = open_location(url).driver.capabilities()  # accepted, not refused as 1MiB was
    assert caps.marker_granularity <= MAX_GRANULARITY


def test_a_scratch_location_that_does_not_exist_is_one_clear_error(tmp_path):
    from transfercore.testing.subject import ScratchUnusable

    with pytest.raises(ScratchUnusable) as info:
        run_kit(f"posix://{tmp_path}/missing")
    assert "does not exist" in str(info.value) and "create it first" in str(info.value)


def test_objects_hold_whole_granules_in_their_first_half(tmp_path, monkeypatch):
    from transfercore_posix.driver import PosixDriver

    from transfercore.capabilities import Capabilities
    from transfercore.testing.subject import Subject

    monkeypatch.setattr(PosixDriver, "capabilities", lambda self: Capabilities(marker_granularity=1 << 20))
    subject = Subject(f"posix://{tmp_path}")
    half = sum(b.length for b in subject.first_half())
    assert half >= 2 * (1 << 20)
