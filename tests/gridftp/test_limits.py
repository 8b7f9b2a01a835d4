from __future__ import annotations

import pytest

from transfercore.gridftp.limits import Admission, IdleClock, Limits


def test_unauthenticated_flood_evicts_oldest_never_refuses_a_newcomer() -> None:
    adm = Admission(Limits(max_unauthenticated=10, max_unauthenticated_per_address=100))
    flood = [adm.connect("10.0.0.1", t)[0] for t in range(10)]
    slot, evicted = adm.connect("10.0.0.2", 10.0)
    assert evicted == [flood[0]] and flood[0].evicted
    assert adm.unauthenticated == 10
    assert adm.login(slot) is None  # the newcomer logs in: no session slot was held by the flood
    assert adm.sessions == 1 and adm.unauthenticated == 9


def test_per_address_cap_evicts_that_address_only() -> None:
    adm = Admission(Limits(max_unauthenticated=100, max_unauthenticated_per_address=3))
    other = adm.connect("192.0.2.9", 0)[0]
    mine = [adm.connect("192.0.2.1", t)[0] for t in range(1, 4)]
    _, evicted = adm.connect("192.0.2.1", 5)
    assert evicted == [mine[0]]
    assert not other.evicted


def test_session_limits_total_and_per_address() -> None:
    adm = Admission(Limits(max_sessions=3, max_sessions_per_address=2))
    a1, a2, a3 = (adm.connect("a", 0)[0] for _ in range(3))
    b1, b2 = (adm.connect("b", 0)[0] for _ in range(2))
    assert adm.login(a1) is None and adm.login(a2) is None
    assert "from a (2)" in (adm.login(a3) or "")
    assert adm.login(b1) is None
    assert "Too many sessions (3)" in (adm.login(b2) or "")
    adm.release(a1)
    assert adm.login(b2) is None


def test_failed_logins_slow_the_address_whatever_the_connection() -> None:
    adm = Admission(Limits(failure_delay=0.5, max_failure_delay=4.0, failure_memory=300))
    assert adm.check_wait("x", 0.0) == 0.0
    adm.login_failed("x", 0.0)
    assert adm.check_wait("x", 0.0) == pytest.approx(0.5)  # first retry waits 0.5 s
    # a second connection of the same address queues behind the first one's turn
    assert adm.check_wait("x", 0.0) == pytest.approx(1.0)
    for t in range(1, 10):
        adm.login_failed("x", float(t))
    assert adm.check_wait("x", 9.0) == pytest.approx(4.0)  # capped
    assert adm.check_wait("y", 10.0) == 0.0  # other addresses are not slowed
    # 40 wrong passwords over many connections now take minutes, not seconds
    adm2 = Admission()
    now = 0.0
    for _ in range(40):
        now += adm2.check_wait("z", now)
        adm2.login_failed("z", now)
    assert now > 250
    adm2.login_succeeded("z")
    assert adm2.check_wait("z", now) == 0.0


def test_failures_are_forgotten_after_a_while() -> None:
    adm = Admission(Limits(failure_memory=60))
    adm.login_failed("x", 0.0)
    assert adm.check_wait("x", 61.0) == 0.0


def test_idle_clock_counts_whole_commands_and_the_login_deadline() -> None:
    clock = IdleClock(0.0, idle_timeout=100.0, login_deadline=30.0)
    assert clock.deadline() == 30.0
    clock.command(20.0)
    assert clock.expired_reason(31.0) == "Login timeout: no successful login in time; closing."
    clock.logged_in()
    assert clock.deadline() == 120.0
    assert clock.expired_reason(119.0) is None
    assert clock.expired_reason(120.0) == "Idle timeout; closing the session."


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="login_timeout"):
        Limits(login_timeout=0)
