"""Self-test of the kit: it must catch every lying mode of the mock driver and
pass the honest drivers.  A kit that passes a liar is worthless."""

from __future__ import annotations

import pytest

from transfercore.testing.clause import Outcome
from transfercore.testing.runner import format_report, run_kit
from transfercore.testing.subject import KitOptions

# The clause that each lie breaks by definition; other clauses may fail too.
LIES = {
    "early-marker": "durable",  # marker reported before the bytes are on media
    "wide-marker": "marker-sound",  # marker covers bytes never written
    "forget-record": "rejects-unbacked",  # no record, so any marker is believed
}


@pytest.mark.parametrize(("lie", "clause"), sorted(LIES.items()))
def test_kit_fails_each_lying_mode_naming_the_clause(lie, clause):
    report = run_kit(f"mock://selftest-{lie}/scratch?lie={lie}")
    assert not report.ok
    result = report.result(clause)
    assert result.outcome is Outcome.FAIL, format_report(report)
    assert result.verdict.evidence
    assert clause in format_report(report)


def test_forget_record_loses_marked_bytes_across_a_crash():
    report = run_kit("mock://selftest-forget/scratch?lie=forget-record")
    assert report.result("durable").outcome is Outcome.FAIL
    assert "covered by reported markers were lost" in report.result("durable").verdict.evidence


def test_kit_passes_the_honest_mock():
    report = run_kit("mock://selftest-honest/scratch")
    assert report.ok, format_report(report)
    assert report.result("durable").outcome is Outcome.PASS
    assert "simulate_crash()" in report.result("durable").verdict.evidence
    assert report.result("checksums").outcome is Outcome.PASS


@pytest.mark.fuse
def test_kit_passes_posix_including_power_loss(tmp_path):
    report = run_kit(f"posix://{tmp_path}", KitOptions(power_loss=True))
    assert report.ok, format_report(report)
    assert report.result("durable-power-loss").outcome is Outcome.PASS
