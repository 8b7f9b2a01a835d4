import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mock_support import open_mock, payload

from transfercore.errors import InvalidWrite, StorageError, WriterClosed
from transfercore.ranges import RangeSet

SIZE = 64


def _replay(url, ops):
    """Run writes and durable calls, crash, and check every marked byte survived."""
    from transfercore_mock.stores import reset_stores

    reset_stores()
    driver, path = open_mock(url)
    data = payload(SIZE)
    writer = driver.open_write(path, SIZE)
    marker = RangeSet()
    for op in ops:
        if op == "durable":
            new = writer.durable()
            assert new.contains(marker)
            marker = new
        else:
            a, b = op
            try:
                writer.write(a, data[a:b])
            except InvalidWrite:
                pass
    driver.simulate_crash()
    with pytest.raises(StorageError, match="crashed"):
        writer.write(0, b"")
    assert driver.partial(path).contains(marker)
    for r in marker:
        assert driver.partial_bytes(path, r.start, r.length) == data[r.start : r.end]
    resumed = driver.open_write(path, SIZE, marker)
    for r in marker.complement(SIZE):
        resumed.write(r.start, data[r.start : r.end])
    resumed.complete()
    with driver.open_read(path) as reader:
        assert reader.read(0, SIZE) == data


op = st.one_of(
    st.just("durable"),
    st.tuples(st.integers(0, SIZE - 1), st.integers(1, 16)).map(lambda t: (t[0], min(SIZE, t[0] + t[1]))),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(op, max_size=25), st.booleans())
def test_after_a_crash_every_marked_byte_reads_back_intact(ops, corrupt):
    _replay(f"mock://s/obj?corrupt={'true' if corrupt else 'false'}", ops)


def test_unsynced_bytes_are_lost_on_crash():
    driver, path = open_mock("mock://s/obj")
    writer = driver.open_write(path, 10)
    writer.write(0, b"01234")
    writer.durable()
    writer.write(5, b"56789")
    driver.simulate_crash()
    assert driver.partial(path) == RangeSet.span(0, 5)
    assert driver.partial_bytes(path, 0, 10) == b"01234" + b"\0" * 5


def test_corrupt_crash_scrambles_unsynced_bytes_only():
    driver, path = open_mock("mock://s/obj?corrupt=true")
    writer = driver.open_write(path, 4096)
    writer.write(0, b"a" * 2048)
    writer.durable()
    writer.write(2048, b"b" * 2048)
    driver.simulate_crash()
    assert driver.partial_bytes(path, 0, 2048) == b"a" * 2048
    assert driver.partial_bytes(path, 2048, 2048) not in (b"b" * 2048, b"\0" * 2048)


def test_parallel_writes():
    driver, path = open_mock("mock://s/obj")
    size = 1 << 20
    data = payload(size)
    writer = driver.open_write(path, size)
    offsets = list(range(0, size, 4096))
    random.Random(3).shuffle(offsets)
    threads = [threading.Thread(target=lambda o=offsets[i::4]: [writer.write(x, data[x : x + 4096]) for x in o])
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert writer.durable() == RangeSet.span(0, size)
    writer.complete()
    assert driver.open_read(path).read(0, size) == data


@pytest.mark.parametrize(("offset", "data"), [(-1, b"x"), (9, b"xy"), (1, b"x"), ("0", b"x")])
def test_bad_writes_are_refused(offset, data):
    driver, path = open_mock("mock://s/obj")
    writer = driver.open_write(path, 10)
    writer.write(0, b"ab")
    with pytest.raises(InvalidWrite):
        writer.write(offset, data)
    assert writer.durable() == RangeSet.span(0, 2)


@pytest.mark.parametrize("how", ["complete", "abort", "close"])
def test_use_after_close_is_refused(how):
    driver, path = open_mock("mock://s/obj")
    writer = driver.open_write(path, 1)
    writer.write(0, b"x")
    getattr(writer, how)()
    for call in (lambda: writer.write(0, b"x"), writer.durable, writer.complete):
        with pytest.raises(WriterClosed):
            call()


def test_complete_with_missing_bytes_is_refused():
    driver, path = open_mock("mock://s/obj")
    writer = driver.open_write(path, 10)
    writer.write(0, b"0123")
    with pytest.raises(InvalidWrite, match="4-10"):
        writer.complete()
    writer.write(4, b"456789")
    writer.complete()
    assert driver.stat(path).size == 10


def test_prefix_model_needs_ordered_writes_and_reports_prefixes():
    driver, path = open_mock("mock://s/obj?model=prefix")
    writer = driver.open_write(path, 10)
    with pytest.raises(InvalidWrite, match="expected offset 0"):
        writer.write(5, b"5")
    writer.write(0, b"012")
    with pytest.raises(InvalidWrite, match="out of order"):
        writer.write(4, b"4")
    writer.write(3, b"3")
    assert writer.durable() == RangeSet.span(0, 4)


def test_none_model_reports_no_marker_but_completes():
    driver, path = open_mock("mock://s/obj?model=none")
    writer = driver.open_write(path, 4)
    writer.write(0, b"ab")
    assert writer.durable() == RangeSet()
    writer.write(2, b"cd")
    writer.complete()
    assert driver.open_read(path).read(0, 4) == b"abcd"


def test_a_fresh_open_overtakes_an_old_writer():
    driver, path = open_mock("mock://s/obj")
    old = driver.open_write(path, 4)
    old.write(0, b"ab")
    new = driver.open_write(path, 4)
    with pytest.raises(StorageError, match="discarded or restarted"):
        old.durable()
    new.write(0, b"wxyz")
    new.complete()


# -- read-back before publishing ------------------------------------------------------------


def test_read_durable_returns_the_stored_bytes_inside_the_marker():
    from transfercore_mock.stores import reset_stores

    from transfercore.errors import InvalidRead

    reset_stores()
    driver, path = open_mock("mock://rb/o?flip_at=10")
    data = payload(100)
    writer = driver.open_write(path, 100)
    writer.write(0, data[:40])
    with pytest.raises(InvalidWrite, match="durable marker"):
        writer.read_durable(0, bytearray(10))  # accepted, not durable yet
    writer.durable()
    writer.write(40, data[40:80])
    back = bytearray(40)
    writer.read_durable(0, back)
    # What the store holds (byte 10 was damaged on its way there), not what was sent.
    assert back[:10] == data[:10] and back[10] == data[10] ^ 0xFF and back[11:] == data[11:40]
    with pytest.raises(InvalidWrite, match="durable marker"):
        writer.read_durable(30, bytearray(20))  # straddles the marker's end
    with pytest.raises(InvalidRead):
        writer.read_durable(90, bytearray(20))  # past the size
    with pytest.raises(InvalidRead):
        writer.read_durable(-1, bytearray(1))
    writer.write(80, data[80:])
    writer.durable()
    whole = bytearray(100)
    writer.read_durable(0, memoryview(whole))
    assert whole[40:] == data[40:]
    writer.complete()
    with pytest.raises(WriterClosed):
        writer.read_durable(0, bytearray(1))


def test_read_back_is_declared_unless_switched_off_or_there_are_no_markers():
    assert open_mock("mock://rb/o")[0].capabilities().read_back
    assert not open_mock("mock://rb/o?read_back=false")[0].capabilities().read_back
    assert not open_mock("mock://rb/o?model=none")[0].capabilities().read_back
