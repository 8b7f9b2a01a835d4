"""The shared limits under real processes: the record lock keeps the table whole."""

from __future__ import annotations

import os
import time

from transfercore.gridftp.limits import Limits
from transfercore.gridftp.sharedlimits import SharedAdmission
from transfercore.gridftp.sharedstate import SharedRegion


def _churn(adm: SharedAdmission, address: str) -> int:
    """Connect, log in, check the total, leave; for one second.  0: the limit held."""
    logged = 0
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        slot, _ = adm.connect(address, time.monotonic())
        if adm.login(slot) is None:
            logged += 1
            if adm.sessions > adm.limits.max_sessions:
                return 1
        adm.release(slot)
    return 0 if logged else 2


def test_two_processes_admitting_at_once_keep_the_limit_and_leave_no_record() -> None:
    region = SharedRegion.create()
    limits = Limits(max_sessions=2, max_sessions_per_address=2)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 3
        try:
            code = _churn(SharedAdmission(limits, region, 1, 2), "10.0.0.2")
        finally:
            os._exit(code)
    mine = _churn(SharedAdmission(limits, region, 0, 2), "10.0.0.1")
    _, status = os.waitpid(pid, 0)
    try:
        assert (mine, os.waitstatus_to_exitcode(status)) == (0, 0)
        check = SharedAdmission(limits, region, 0, 2)
        assert check.sessions == 0 and check.unauthenticated == 0
    finally:
        region.close()


def test_a_transfer_marked_busy_is_not_undone_by_another_workers_decision() -> None:
    # the owner writes busy and last_command without the lock; a decision of another
    # worker in the meantime writes back only the states it changed
    region = SharedRegion.create()
    limits = Limits(max_sessions=1, max_sessions_per_address=1, idle_eviction=1)
    w0, w1 = SharedAdmission(limits, region, 0, 2), SharedAdmission(limits, region, 1, 2)
    slot, _ = w0.connect("a", 0.0)
    assert w0.login(slot) is None
    w1.connect("b", 1.0)  # a decision that loads and stores every record
    w0.set_busy(slot, True)
    newcomer, _ = w1.connect("a", 100.0)
    w1.connect("c", 100.0)
    assert w1.make_room(newcomer, 100.0) == [] and w0.take_evicted() == []
    w0.set_busy(slot, False)
    w0.touch(slot, 100.0)
    assert w1.make_room(newcomer, 100.5) == []  # a command just came: not idle either
    assert w1.make_room(newcomer, 101.5) == [] and w0.take_evicted() == [slot]
    region.close()


def test_a_dead_workers_connections_no_longer_count() -> None:
    region = SharedRegion.create()
    limits = Limits(max_sessions=1, max_sessions_per_address=1)
    dead, alive = SharedAdmission(limits, region, 0, 2), SharedAdmission(limits, region, 1, 2)
    slot, _ = dead.connect("a", 0.0)
    assert dead.login(slot) is None
    other, _ = alive.connect("a", 1.0)
    assert alive.login(other) is not None
    region.forget_worker(0)
    assert alive.login(other) is None
    region.close()


def test_lookups_read_only_the_records_ever_used_and_free_ones_are_reused() -> None:
    # a lookup per upload or login must not read the whole table (it is 4,096 records)
    region = SharedRegion.create()
    adm = SharedAdmission(Limits(), region, 0, 1)
    slots = [adm.connect("a", float(t))[0] for t in range(3)]
    assert region.used(region.slots) == 3
    for slot in slots:
        adm.release(slot)
    for t in range(3):
        adm.connect("b", float(t))
    assert region.used(region.slots) == 3  # the released records were taken again
    assert len(list(region.records(region.slots))) == 3
    region.close()
