"""The crash clauses catch a driver whose markers run ahead of the media."""

from __future__ import annotations

import os

import pytest

from transfercore.testing.catalog import by_name
from transfercore.testing.clause import Outcome
from transfercore.testing.runner import run_clause


@pytest.mark.fuse
def test_power_loss_passes_for_the_honest_posix_driver(tmp_path):
    result = run_clause(by_name("durable-power-loss"), f"posix://{tmp_path}")
    assert result.outcome is Outcome.PASS, result.verdict.evidence
    assert result.verdict.evidence.count("crash") >= 3


@pytest.mark.fuse
def test_power_loss_catches_markers_without_fsync(tmp_path, monkeypatch):
    # The same driver with its fsync calls removed: every marker is a lie that
    # only a power cut (not a process kill) reveals.
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    monkeypatch.setattr(os, "fdatasync", lambda fd: None)
    result = run_clause(by_name("durable-power-loss"), f"posix://{tmp_path}")
    assert result.outcome is Outcome.FAIL
    assert "covered by reported markers were lost" in result.verdict.evidence or "rejected" in result.verdict.evidence


def test_killed_child_keeps_marked_bytes_for_posix(tmp_path):
    result = run_clause(by_name("durable"), f"posix://{tmp_path}")
    assert result.outcome is Outcome.PASS, result.verdict.evidence
    assert "killed child process" in result.verdict.evidence
