"""The kit against drivers that lie in ways only one clause can see (``liars/kit_liars.py``):
each is caught by the clause meant for it, and the honest control passes that clause."""

from __future__ import annotations

import pytest

from transfercore.testing.catalog import by_name
from transfercore.testing.checks.basics import _check_held_writes
from transfercore.testing.clause import Outcome, Violation
from transfercore.testing.runner import format_report, run_kit
from transfercore.testing.subject import KitOptions, Subject


def test_syncs_follows_a_data_file_kept_in_a_subdirectory(liars, tmp_path):
    report = run_kit(f"subdirstore://{tmp_path}?sync_data=false", KitOptions(power_loss=False),
                     clauses=[by_name("syncs")])
    (result,) = report.results
    assert result.outcome is Outcome.FAIL, format_report(report)
    assert ".store/conformance-syncs-" in result.verdict.evidence
    assert "was written but not fsynced/fdatasynced before durable() returned" in result.verdict.evidence
    honest = run_kit(f"subdirstore://{tmp_path}?sync_data=true", clauses=[by_name("syncs")])
    assert honest.results[0].outcome is Outcome.PASS, format_report(honest)
    assert ".store/" in honest.results[0].verdict.evidence


def test_concurrency_holds_a_write_and_catches_a_range_counted_before_its_pwrite(liars, tmp_path):
    report = run_kit(f"earlymark://{tmp_path}", clauses=[by_name("concurrency")])
    (result,) = report.results
    assert result.outcome is Outcome.FAIL, format_report(report)
    # The clause's threads may meet the lie first, by chance; the held write meets it every time.
    assert ("the marker ran ahead of the data" in result.verdict.evidence
            or "the driver counts a range as written before its write finishes" in result.verdict.evidence)
    subject = Subject(f"earlymark://{tmp_path}")
    try:
        with pytest.raises(Violation, match="the driver counts a range as written before its write finishes"):
            _check_held_writes(subject)
    finally:
        subject.cleanup()
    honest = run_kit(f"posix://{tmp_path}", clauses=[by_name("concurrency")])
    assert honest.results[0].outcome is Outcome.PASS, format_report(honest)
    assert "3 writes held after the kernel took their bytes (by a preloaded C library)" in honest.results[0].verdict.evidence


def test_without_a_compiler_the_hold_wraps_pythons_os_module_and_still_catches_it(liars, tmp_path, monkeypatch):
    from transfercore.testing import holdwrite

    monkeypatch.setattr(holdwrite, "build_shim", lambda: (None, "no C compiler (gcc) on PATH"))
    report = run_kit(f"earlymark://{tmp_path}", clauses=[by_name("concurrency")])
    assert report.results[0].outcome is Outcome.FAIL, format_report(report)
    honest = run_kit(f"posix://{tmp_path}", clauses=[by_name("concurrency")])
    assert honest.results[0].outcome is Outcome.PASS, format_report(honest)
    assert "by a wrapper of Python's os module (no C compiler (gcc) on PATH)" in honest.results[0].verdict.evidence


def test_leftovers_catches_a_partial_leaked_by_a_writer_killed_before_durable(liars, tmp_path):
    report = run_kit(f"leaky://{tmp_path}", clauses=[by_name("leftovers")])
    (result,) = report.results
    assert result.outcome is Outcome.FAIL, format_report(report)
    assert "the storage keeps .conformance-leftovers-completes-" in result.verdict.evidence
    assert ".tcpart (the killed writer's)" in result.verdict.evidence
    scratch = tmp_path / "honest"
    scratch.mkdir()
    honest = run_kit(f"posix://{scratch}", clauses=[by_name("leftovers")])
    assert honest.results[0].outcome is Outcome.PASS, format_report(honest)
    assert "killed writer left 1 files, gone once a new writer completes" in honest.results[0].verdict.evidence
    # the honest driver leaves the scratch directory as it found it
    assert list(scratch.iterdir()) == []


def test_a_library_the_loader_cannot_preload_falls_back_to_the_python_hold(liars, tmp_path, monkeypatch):
    from transfercore.testing import holdwrite

    broken = tmp_path / "not-a-library.so"
    broken.write_text("not ELF")
    monkeypatch.setattr(holdwrite, "build_shim", lambda: (str(broken), ""))
    report = run_kit(f"earlymark://{tmp_path}", clauses=[by_name("concurrency")])
    assert report.results[0].outcome is Outcome.FAIL, format_report(report)
    honest = run_kit(f"posix://{tmp_path}", clauses=[by_name("concurrency")])
    assert honest.results[0].outcome is Outcome.PASS, format_report(honest)
    assert f"a wrapper of Python's os module (the dynamic loader did not preload {broken})" in \
        honest.results[0].verdict.evidence


def test_range_writers_claims_catches_a_union_that_claims_bytes_no_writer_made_durable(liars, tmp_path):
    report = run_kit(f"rangeliar://{tmp_path}", clauses=[by_name("range-writers-claims")])
    (result,) = report.results
    assert result.outcome is Outcome.FAIL, format_report(report)
    assert "which no writer made durable" in result.verdict.evidence
    # the union clause alone does not see it: it checks that nothing durable is missing
    assert run_kit(f"rangeliar://{tmp_path}", clauses=[by_name("range-writers-union")]).ok
    honest = run_kit(f"posix://{tmp_path}", clauses=[by_name("range-writers-claims"), by_name("range-writers-union")])
    assert honest.ok, format_report(honest)
    assert "publish was refused" in honest.results[0].verdict.evidence
    other = run_kit(f"mock://{tmp_path}", clauses=[by_name("range-writers-claims")])
    assert other.results[0].outcome is Outcome.NOT_APPLICABLE
