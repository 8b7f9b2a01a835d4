import time

import pytest
from mock_support import open_mock

from transfercore.errors import StorageError
from transfercore.ranges import RangeSet


def test_fail_after_fires_once_and_keeps_durable_data():
    driver, path = open_mock("mock://f/obj?fail_after=10")
    w = driver.open_write(path, 20)
    w.write(0, b"0123456789")
    marker = w.durable()
    with pytest.raises(StorageError, match="injected fault.*fail_after=10"):
        w.write(10, b"x")
    assert w.durable() == marker == RangeSet.span(0, 10)
    w.write(10, b"abcdefghij")  # fired once: the device works again
    w.complete()


def test_fail_durable_fails_the_nth_call_only():
    driver, path = open_mock("mock://f/obj?fail_durable=2")
    w = driver.open_write(path, 4)
    w.write(0, b"ab")
    assert w.durable() == RangeSet.span(0, 2)
    w.write(2, b"cd")
    with pytest.raises(StorageError, match="durability call 2"):
        w.durable()
    assert driver.partial(path) == RangeSet.span(0, 2)
    assert w.durable() == RangeSet.span(0, 4)


def test_slow_writes_take_their_time():
    driver, path = open_mock("mock://f/obj?slow=0.05")
    w = driver.open_write(path, 3)
    start = time.monotonic()
    for i in range(3):
        w.write(i, b"x")
    assert time.monotonic() - start >= 0.15


def test_counters_belong_to_one_opened_url():
    a, path = open_mock("mock://f/obj?fail_after=4")
    b, _ = open_mock("mock://f/obj?fail_after=4")
    wa = a.open_write(path, 8)
    wa.write(0, b"0123")
    wb = b.open_write("/other", 8)
    wb.write(0, b"0123")  # b has its own counter
    with pytest.raises(StorageError):
        wa.write(4, b"4")
