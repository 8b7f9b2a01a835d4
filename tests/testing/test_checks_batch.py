"""The batch clauses pass for the reference drivers and catch a batch that skips its syncs."""

import os

import pytest

from transfercore.testing.checks import batch
from transfercore.testing.clause import Violation
from transfercore.testing.subject import KitOptions, Subject


@pytest.fixture
def posix_subject(tmp_path):
    s = Subject(f"posix://{tmp_path}", KitOptions(seed=3))
    yield s
    s.cleanup()


def test_batch_clauses_pass_for_posix_and_mock(posix_subject, tmp_path):
    assert "one refused" in batch.check_batch(posix_subject)
    assert "survived a power cut" in batch.check_batch_power_loss(posix_subject)
    store = tmp_path / "mock"
    store.mkdir()
    mock = Subject(f"mock://kit/x?dir={store}", KitOptions(seed=3))
    try:
        assert "simulated crash" in batch.check_batch(mock)
    finally:
        mock.cleanup()


@pytest.mark.fuse
def test_the_power_loss_clause_catches_a_batch_that_never_syncs(posix_subject, monkeypatch):
    # fsync in this process becomes a no-op: the batch's renames and bytes
    # never reach the media, and the check must notice after the power cut.
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    monkeypatch.setattr(os, "fdatasync", lambda fd: None)
    with pytest.raises(Violation, match="after a power cut"):
        batch.check_batch_power_loss(posix_subject)


def test_a_batch_that_publishes_a_refused_object_fails_the_clause(posix_subject, monkeypatch):
    driver = posix_subject.driver
    real = driver.complete_batch

    def ignores_verify(writers, verify=None):
        return real(writers, None)

    monkeypatch.setattr(driver, "complete_batch", ignores_verify)
    with pytest.raises(Violation):
        batch.check_batch(posix_subject)
