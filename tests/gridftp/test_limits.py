from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from transfercore.gridftp.limits import Admission, IdleClock, Limits, Slot
from transfercore.gridftp.sharedlimits import SharedAdmission
from transfercore.gridftp.sharedstate import SharedRegion


class TwoWorkers:
    """Two workers' :class:`SharedAdmission` on one region, taking turns at new connections.

    Every rule below must hold for them together as for one process: a
    slot's decisions go to the worker that holds it, and what one worker
    evicted of the other's is collected from that one (as its poll would)."""

    def __init__(self, limits: Limits | None, region: SharedRegion) -> None:
        self.workers = [SharedAdmission(limits, region, i, 2) for i in range(2)]
        self.turn = 0

    def owner(self, slot: Slot) -> SharedAdmission:
        return self.workers[(slot.id - 1) % 2]

    def _collected(self, evicted: list[Slot]) -> list[Slot]:
        return evicted + [s for w in self.workers for s in w.take_evicted()]

    def connect(self, address: str, now: float) -> tuple[Slot, list[Slot]]:
        worker = self.workers[self.turn]
        self.turn = 1 - self.turn
        slot, evicted = worker.connect(address, now)
        return slot, self._collected(evicted)

    def login(self, slot: Slot) -> str | None:
        return self.owner(slot).login(slot)

    def make_room(self, slot: Slot, now: float) -> list[Slot]:
        return self._collected(self.owner(slot).make_room(slot, now))

    def release(self, slot: Slot) -> None:
        self.owner(slot).release(slot)

    def touch(self, slot: Slot, now: float) -> None:
        self.owner(slot).touch(slot, now)

    def set_busy(self, slot: Slot, busy: bool) -> None:
        self.owner(slot).set_busy(slot, busy)

    def check_wait(self, address: str, now: float) -> float:
        self.turn = 1 - self.turn
        return self.workers[self.turn].check_wait(address, now)

    def login_failed(self, address: str, now: float) -> None:
        self.turn = 1 - self.turn
        self.workers[self.turn].login_failed(address, now)

    def login_succeeded(self, address: str) -> None:
        self.turn = 1 - self.turn
        self.workers[self.turn].login_succeeded(address)

    @property
    def sessions(self) -> int:
        return self.workers[0].sessions

    @property
    def unauthenticated(self) -> int:
        return self.workers[1].unauthenticated


@pytest.fixture(params=["one process", "two workers"])
def make(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    regions: list[SharedRegion] = []

    def build(limits: Limits | None = None) -> Any:
        if request.param == "one process":
            return Admission(limits)
        regions.append(SharedRegion.create())
        return TwoWorkers(limits, regions[-1])

    yield build
    for region in regions:
        region.close()


def test_unauthenticated_flood_evicts_oldest_never_refuses_a_newcomer(make) -> None:
    adm = make(Limits(max_unauthenticated=10, max_unauthenticated_per_address=100))
    flood = [adm.connect("10.0.0.1", t)[0] for t in range(10)]
    slot, evicted = adm.connect("10.0.0.2", 10.0)
    assert evicted == [flood[0]] and flood[0].evicted
    assert adm.unauthenticated == 10
    assert adm.login(slot) is None  # the newcomer logs in: no session slot was held by the flood
    assert adm.sessions == 1 and adm.unauthenticated == 9


def test_per_address_cap_evicts_that_address_only(make) -> None:
    adm = make(Limits(max_unauthenticated=100, max_unauthenticated_per_address=3))
    other = adm.connect("192.0.2.9", 0)[0]
    mine = [adm.connect("192.0.2.1", t)[0] for t in range(1, 4)]
    _, evicted = adm.connect("192.0.2.1", 5)
    assert evicted == [mine[0]]
    assert not other.evicted


def test_session_limits_total_and_per_address(make) -> None:
    adm = make(Limits(max_sessions=3, max_sessions_per_address=2))
    a1, a2, a3 = (adm.connect("a", 0)[0] for _ in range(3))
    b1, b2 = (adm.connect("b", 0)[0] for _ in range(2))
    assert adm.login(a1) is None and adm.login(a2) is None
    assert "from a (2)" in (adm.login(a3) or "")
    assert adm.login(b1) is None
    assert "Too many sessions (3)" in (adm.login(b2) or "")
    adm.release(a1)
    assert adm.login(b2) is None


def test_failed_logins_slow_the_address_whatever_the_connection(make) -> None:
    adm = make(Limits(failure_delay=0.5, max_failure_delay=4.0, failure_memory=300))
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
    adm2 = make()
    now = 0.0
    for _ in range(40):
        now += adm2.check_wait("z", now)
        adm2.login_failed("z", now)
    assert now > 250
    adm2.login_succeeded("z")
    assert adm2.check_wait("z", now) == 0.0


def test_failures_are_forgotten_after_a_while(make) -> None:
    adm = make(Limits(failure_memory=60))
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


def _logged(adm: Any, address: str, now: float) -> Slot:
    slot, _ = adm.connect(address, now)
    assert adm.login(slot) is None
    adm.touch(slot, now)
    return slot


def test_full_sessions_close_the_longest_idle_one_for_a_new_login(make) -> None:
    adm = make(Limits(max_sessions=2, max_sessions_per_address=2, idle_eviction=10))
    a = _logged(adm, "a", 0.0)
    b = _logged(adm, "b", 5.0)
    c, _ = adm.connect("c", 8.0)
    assert adm.make_room(c, 8.0) == []  # nobody idle 10 s yet: the login is refused
    assert adm.login(c) is not None
    adm.release(c)
    c2, _ = adm.connect("c", 16.0)
    assert adm.make_room(c2, 16.0) == [a] and a.evicted
    assert adm.login(c2) is None
    assert b.logged_in and adm.sessions == 2


def test_busy_sessions_are_never_closed_and_an_address_makes_room_from_its_own(make) -> None:
    adm = make(Limits(max_sessions=3, max_sessions_per_address=2, idle_eviction=1))
    a1 = _logged(adm, "a", 0.0)
    a2 = _logged(adm, "a", 1.0)
    b1 = _logged(adm, "b", 0.5)
    adm.set_busy(a1, True)
    new, _ = adm.connect("a", 100.0)
    # "a" has its two: only its own idle one makes room, not b's older one
    assert adm.make_room(new, 100.0) == [a2]
    assert adm.login(new) is None
    new2, _ = adm.connect("c", 200.0)
    adm.set_busy(a1, False)
    adm.set_busy(new, True)
    assert adm.make_room(new2, 200.0) == [a1]  # idle since 0.0, b1 since 0.5
    assert adm.login(new2) is None and b1.logged_in
