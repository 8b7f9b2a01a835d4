"""The group-commit decisions: when queued uploads are committed, and which together."""

from __future__ import annotations

import random

import pytest

from transfercore.groupcommit import CommitPolicy, GroupCommit

POLICY = CommitPolicy(max_count=4, max_bytes=1000, linger=0.01, alone_from=500)


def test_a_lone_upload_is_committed_at_once():
    g: GroupCommit[str] = GroupCommit(POLICY)
    g.started()
    g.submit("a", 10, now=1.0)
    assert g.deadline() == 1.0
    assert g.take(1.0) == ["a"]
    assert g.committing and g.take(1.0) is None and g.deadline() is None


def test_a_finished_upload_waits_at_most_the_linger_for_running_ones():
    g: GroupCommit[str] = GroupCommit(POLICY)
    g.started()
    g.started()
    g.submit("a", 10, now=1.0)
    assert g.take(1.005) is None
    assert g.deadline() == pytest.approx(1.01)
    assert g.take(1.01) == ["a"]


def test_the_wait_ends_when_every_running_upload_has_finished():
    g: GroupCommit[str] = GroupCommit(POLICY)
    for _ in range(3):
        g.started()
    g.submit("a", 10, now=1.0)
    g.submit("b", 10, now=1.001)
    assert g.take(1.002) is None  # one still receives
    g.left()  # it failed: nobody else to wait for
    assert g.take(1.002) == ["a", "b"]


def test_uploads_finishing_during_a_commit_form_the_next_batch():
    g: GroupCommit[str] = GroupCommit(POLICY)
    for _ in range(4):
        g.started()
    g.submit("a", 10, now=0.0)
    g.left()
    g.left()
    g.left()
    assert g.take(0.0) == ["a"]
    for name in "bcd":
        g.started()
        g.submit(name, 10, now=0.001)
    assert g.take(1.0) is None, "one batch at a time"
    g.committed()
    assert g.take(0.002) == ["b", "c", "d"]
    g.committed()
    assert (g.batches, g.objects) == (2, 4)


def test_more_batches_at_once_when_the_policy_allows():
    g: GroupCommit[str] = GroupCommit(CommitPolicy(linger=0.0, max_inflight=2))
    for name in "abc":
        g.started()
        g.submit(name, 1, now=0.0)
        g.take(0.0)
    assert (g.batches, g.queued) == (2, 1), "a third batch waits for one of two to end"
    g.committed()
    assert g.take(0.0) == ["c"]


def test_a_batch_closes_on_count_and_on_bytes():
    g: GroupCommit[int] = GroupCommit(POLICY)
    for _ in range(6):
        g.started()
    for i in range(5):
        g.submit(i, 10, now=0.0)
    # full (4 of max_count) though one upload still runs: no linger
    assert g.take(0.0) == [0, 1, 2, 3]
    g.committed()
    g.submit(5, 400, now=0.0)
    g.started()
    g.submit(6, 400, now=0.0)
    g.started()
    g.submit(7, 400, now=0.0)  # 1210 queued bytes: over max_bytes
    assert g.take(0.0) == [4, 5, 6]  # 810 bytes; the next would exceed 1000
    g.committed()
    assert g.take(0.0) == [7]


def test_large_objects_are_not_grouped():
    assert POLICY.groups(499) and not POLICY.groups(500)


def test_a_policy_that_cannot_work_is_refused():
    with pytest.raises(ValueError):
        CommitPolicy(max_count=0)
    with pytest.raises(ValueError):
        CommitPolicy(linger=-1)
    with pytest.raises(ValueError):
        CommitPolicy(max_inflight=0)


def test_misuse_raises():
    g: GroupCommit[str] = GroupCommit(POLICY)
    with pytest.raises(RuntimeError):
        g.left()
    with pytest.raises(RuntimeError):
        g.committed()


def test_random_schedules_commit_everything_once_in_order_and_never_wait_past_the_linger():
    rng = random.Random(23)
    for _ in range(200):
        g: GroupCommit[int] = GroupCommit(POLICY)
        now, next_id, running, submitted, committed = 0.0, 0, 0, {}, []
        batch: list[int] | None = None
        for _step in range(60):
            now += rng.choice((0.0, 0.001, 0.004, 0.02))
            r = rng.random()
            if r < 0.35:
                g.started()
                running += 1
            elif r < 0.7 and running:
                running -= 1
                if rng.random() < 0.9:
                    g.submit(next_id, rng.randrange(0, 600), now)
                    submitted[next_id] = now
                    next_id += 1
                else:
                    g.left()
            elif batch is not None and rng.random() < 0.5:
                g.committed()
                batch = None
            if batch is None:
                due = g.deadline()
                taken = g.take(now)
                if due is not None and due <= now:
                    assert taken, "a batch was due and not given"
                if taken:
                    assert len(taken) <= POLICY.max_count
                    committed += taken
                    batch = taken
                waiting = [i for i in submitted if i not in set(committed)]
                if waiting and batch is None:
                    # while the storage is free, nothing waits past its linger
                    assert g.deadline() is not None
                    assert g.deadline() <= submitted[waiting[0]] + POLICY.linger + 1e-9
        assert committed == sorted(committed), "batches keep the order of submission"
        assert len(set(committed)) == len(committed), "an upload committed twice"
        assert g.running == running
