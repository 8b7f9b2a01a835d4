"""``serve --cpu-affinity``: which CPU a process or worker keeps (the rules, without starting a server)."""

from __future__ import annotations

import os

import pytest

from transfercore.errors import OptionError
from transfercore.service import affinity


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("auto", "auto"), ("OFF", "off"), ("3", (3,)), ("0,2-3", (0, 2, 3)), (" 1 , 1-2 ", (1, 2))],
)
def test_settings_parse(text: str, parsed: object) -> None:
    assert affinity.parse(text) == parsed


@pytest.mark.parametrize("text", ["", "one", "1,", "-2", "2-", "1;2", "3-1"])
def test_a_malformed_setting_says_what_is_expected(text: str) -> None:
    with pytest.raises(OptionError, match="--cpu-affinity"):
        affinity.parse(text)


def test_auto_puts_each_worker_on_a_core_of_its_own() -> None:
    allowed = {4, 5, 7}
    assert [affinity.cpus_for("auto", allowed, i, 3) for i in range(3)] == [4, 5, 7]
    # more workers than cores: the scheduler places them, none is narrowed
    assert [affinity.cpus_for("auto", allowed, i, 4) for i in range(4)] == [None] * 4


def test_auto_keeps_a_single_process_on_one_core_of_a_small_machine_only() -> None:
    assert affinity.cpus_for("auto", {0, 1}, None, 1) == 1
    assert affinity.cpus_for("auto", {3}, None, 1) == 3
    assert affinity.cpus_for("auto", {4, 5, 7}, None, 1) is None


def test_off_never_narrows() -> None:
    assert affinity.cpus_for("off", {0, 1}, 0, 2) is None
    assert affinity.cpus_for("off", {0, 1}, None, 1) is None


def test_a_list_is_taken_round_robin_by_the_workers() -> None:
    allowed = {0, 1, 2, 3}
    assert [affinity.cpus_for((2, 3), allowed, i, 5) for i in range(5)] == [2, 3, 2, 3, 2]
    assert affinity.cpus_for((3,), allowed, None, 1) == 3


def test_a_cpu_the_process_may_not_use_is_refused_with_the_ones_it_may() -> None:
    with pytest.raises(OptionError, match="CPU 9 is not one") as caught:
        affinity.cpus_for((1, 9), {0, 1}, 1, 2)
    assert caught.value.hint == "choose among 0,1, or pass auto"
    # checked for every worker before any starts: the second's CPU is beyond this machine's
    mine = sorted(os.sched_getaffinity(0))
    with pytest.raises(OptionError, match=f"CPU {mine[-1] + 1} is not one"):
        affinity.check((mine[0], mine[-1] + 1), 2)
    affinity.check((mine[0],), 2)


def test_kept_gives_the_calling_thread_its_cpus_back_also_after_an_error() -> None:
    before = os.sched_getaffinity(0)
    cpu = max(before)
    with affinity.kept((cpu,), None, 1) as kept:
        assert kept == cpu and os.sched_getaffinity(0) == {cpu}
    assert os.sched_getaffinity(0) == before
    with pytest.raises(RuntimeError), affinity.kept((cpu,), None, 1):
        raise RuntimeError("the server failed")
    assert os.sched_getaffinity(0) == before
    with affinity.kept("off", None, 1) as kept:
        assert kept is None and os.sched_getaffinity(0) == before

