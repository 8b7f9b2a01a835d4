"""Self-test of the kit: it must catch every lying mode of the mock driver and
pass the honest drivers.  A kit that passes a liar is worthless."""

from __future__ import annotations

import pytest

from transfercore.testing.catalog import by_name
from transfercore.testing.clause import Outcome
from transfercore.testing.runner import format_report, run_kit
from transfercore.testing.subject import KitOptions

# The clause that each lie breaks by definition; other clauses may fail too.
LIES = {
    "early-marker": "durable",  # marker reported before the bytes are on media
    "wide-marker": "marker-sound",  # marker covers bytes never written
    "forget-record": "rejects-unbacked",  # no record, so any marker is believed
    "racy-marker": "concurrency",  # a range joins the marker before its write returned
    "loose-reads": "reads",  # bad read offsets bent into the object instead of refused
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


NOSYNC = """
from transfercore_posix.driver import PosixDriver
from transfercore_posix.writer import PosixWriter
from transfercore_posix import sidecar


class NoSyncWriter(PosixWriter):
    # durable() as the posix driver's, less the fdatasync of the data
    def durable(self):
        with self._sync_lock:
            with self._lock:
                self._check_open()
                snapshot = self._done.to_rangeset()
            if snapshot != self._recorded:
                sidecar.store(self._directory, self._name, self._record.with_ranges(snapshot))
                self._recorded = snapshot
            self._marker = snapshot
            return snapshot


class NoSyncDriver(PosixDriver):
    name = "nosync"

    def open_write(self, path, size, resume=None):
        writer = super().open_write(path, size, resume)
        writer.__class__ = NoSyncWriter
        return writer
"""


def test_kit_catches_a_driver_that_skips_fdatasync_without_fuse(tmp_path, monkeypatch):
    from transfercore.registry import refresh
    from transfercore.testing.catalog import by_name

    # a third-party distribution registering the driver, as one installed from outside would
    site = tmp_path / "site"
    info = site / "nosync_driver-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nosync-driver\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[transfercore.drivers]\nnosync = nosync_driver:NoSyncDriver\n")
    (site / "nosync_driver.py").write_text(NOSYNC)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", f"{site}:{__import__('os').environ.get('PYTHONPATH', '')}")
    refresh()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    try:
        # Without the power-loss clause, as a machine without FUSE runs the kit.
        report = run_kit(f"nosync://{scratch}", KitOptions(power_loss=False))
    finally:
        refresh()
    result = report.result("syncs")
    assert result.outcome is Outcome.FAIL, format_report(report)
    assert "was written but not fsynced/fdatasynced before durable() returned" in result.verdict.evidence
    assert ".tcpart" in result.verdict.evidence  # names the file that holds the data
    # and the same clause passes the real posix driver
    honest = run_kit(f"posix://{scratch}", clauses=[by_name("syncs")])
    assert honest.result("syncs").outcome is Outcome.PASS, format_report(honest)


def test_a_machine_without_fuse_is_not_run_never_failed_or_passed(tmp_path, monkeypatch):
    from transfercore.testing import powerloss
    from transfercore.testing.catalog import by_name
    from transfercore.testing.powerloss.mount import FuseUnavailable

    def no_fuse():
        raise FuseUnavailable("the power-loss file system needs FUSE: mfusepy is missing",
                              hint="install FUSE 3 and mfusepy")

    monkeypatch.setattr(powerloss, "check_fuse", no_fuse)
    clauses = ["durable-power-loss", "batch-power-loss"]
    report = run_kit(f"posix://{tmp_path}", clauses=[by_name(name) for name in clauses])
    for name in clauses:
        result = report.result(name)
        assert result.outcome is Outcome.NOT_RUN, format_report(report)
        assert "install FUSE 3 and mfusepy" in result.verdict.evidence and "--no-power-loss" in result.verdict.evidence
        assert f"NOT RUN  {name}" in format_report(report)
    assert report.ok and report.not_run() == clauses


def test_read_back_clause_reads_what_is_stored_and_explains_a_driver_without_it():
    # early-marker leaves the marked bytes out of the store: a read-back of what is
    # stored returns other bytes, where a copy kept from the write would have matched.
    report = run_kit("mock://selftest-readback/scratch?lie=early-marker", clauses=[by_name("read-back")])
    (result,) = report.results
    assert result.outcome is Outcome.FAIL and "returned other bytes than were written" in result.verdict.evidence
    honest = run_kit("mock://selftest-readback-honest/scratch", clauses=[by_name("read-back")])
    assert honest.results[0].outcome is Outcome.PASS, format_report(honest)
    without = run_kit("mock://selftest-readback-off/scratch?read_back=false", clauses=[by_name("read-back")])
    assert without.results[0].outcome is Outcome.NOT_APPLICABLE and without.ok
    assert "verify its objects only after publishing" in without.results[0].verdict.evidence


def test_both_power_loss_clauses_are_not_run_where_fusermount3_cannot_be_found(tmp_path):
    import subprocess
    import sys

    from transfercore.cli.exitcodes import ExitCode

    empty = tmp_path / "bin"
    empty.mkdir()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    # FUSE made unavailable for real: the command's PATH holds no fusermount3
    proc = subprocess.run(
        [sys.executable, "-m", "transfercore", "conformance", f"posix://{scratch}",
         "--clause", "durable-power-loss", "--clause", "batch-power-loss"],
        capture_output=True, text=True, timeout=120, env={**__import__("os").environ, "PATH": str(empty)},
    )
    assert proc.returncode == ExitCode.NOT_RUN, proc.stdout + proc.stderr
    assert "NOT RUN  durable-power-loss" in proc.stdout and "NOT RUN  batch-power-loss" in proc.stdout
    assert proc.stdout.count("fusermount3 is missing") == 2
    assert "FAIL" not in proc.stdout and "unexpected" not in proc.stdout
