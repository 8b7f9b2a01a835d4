"""Throttle: the process is stopped part of each period and left running after close()."""

import subprocess
import time

import pytest

from transfercore.testing.throttle import Throttle


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


def test_the_process_is_stopped_in_turns_and_runs_on_after_close():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        throttle = Throttle(proc.pid, duty=0.2, period=0.2)
        states = set()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "T" not in states:
            states.add(_state(proc.pid))
            time.sleep(0.01)
        assert "T" in states, f"never stopped: {states}"
        throttle.close()
        assert _state(proc.pid) != "T"
    finally:
        proc.kill()
        proc.wait()


def test_a_duty_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError):
        Throttle(1, duty=0)
