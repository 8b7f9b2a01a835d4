import pytest

from transfercore.engine.policy import DEFAULT_BYTES, DEFAULT_INTERVAL, MarkerPolicy
from transfercore.errors import OptionError


def test_defaults_are_gridftp_like():
    policy = MarkerPolicy()
    assert policy.interval == DEFAULT_INTERVAL == 5.0
    assert policy.bytes == DEFAULT_BYTES == 256 * 1024 * 1024


def test_time_or_bytes_whichever_first():
    policy = MarkerPolicy(interval=5, bytes=100)
    assert not policy.due(1.0, 99)
    assert policy.due(1.0, 100)
    assert policy.due(5.0, 1)


def test_nothing_new_means_no_marker():
    assert not MarkerPolicy(interval=1, bytes=1).due(100.0, 0)


def test_zero_turns_a_limit_off():
    policy = MarkerPolicy(interval=0, bytes=0)
    assert policy == MarkerPolicy.none()
    assert not policy.periodic
    assert not policy.due(1e9, 10**15)
    assert policy.seconds_until_due(3.0) is None


def test_seconds_until_due():
    assert MarkerPolicy(interval=5).seconds_until_due(2.0) == 3.0
    assert MarkerPolicy(interval=5).seconds_until_due(7.0) == 0.0


@pytest.mark.parametrize("kwargs", [{"interval": -1}, {"bytes": -5}, {"bytes": 1.5}, {"interval": float("nan")}])
def test_bad_values_are_refused(kwargs):
    with pytest.raises(OptionError):
        MarkerPolicy(**kwargs)


def test_frozen():
    with pytest.raises(AttributeError):
        MarkerPolicy().interval = 3  # type: ignore[misc]
