"""The reorder window: out-of-order blocks from many producers, in order to one sink."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transfercore import reorder
from transfercore.ranges import RangeSet
from transfercore.reorder import OutOfOrder, ReorderWindow, Stopped, WindowStalled


class Sink:
    def __init__(self) -> None:
        self.calls: list[tuple[int, bytes]] = []
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    def __call__(self, offset: int, view: memoryview) -> None:
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        time.sleep(0.0005)
        self.calls.append((offset, bytes(view)))
        with self.lock:
            self.active -= 1

    def joined(self) -> bytes:
        return b"".join(d for _, d in self.calls)


def producers(window: ReorderWindow, blocks: list[tuple[int, bytes]], n: int) -> list[BaseException]:
    """Deal blocks round-robin to ``n`` threads, each sending its own in ascending order, like MODE E."""
    errors: list[BaseException] = []
    lanes = [blocks[i::n] for i in range(n)]

    def run(lane: list[tuple[int, bytes]]) -> None:
        try:
            for offset, data in lane:
                time.sleep(random.random() / 2000)
                buf = bytearray(data)  # reused-buffer semantics: scribbled after put returns
                window.put(offset, buf)
                buf[:] = b"\xff" * len(buf)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(lane,)) for lane in lanes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return errors


@pytest.mark.parametrize("capacity", [0, 1000, 10**6])
def test_parallel_producers_deliver_in_order_without_holes(capacity: int) -> None:
    data = random.randbytes(200_000)
    blocks = [(o, data[o : o + 3000]) for o in range(0, len(data), 3000)]
    sink = Sink()
    window = ReorderWindow(RangeSet.span(0, len(data)), sink, capacity=capacity, stall_timeout=20)
    assert producers(window, blocks, 6) == []
    assert sink.joined() == data
    offsets = [o for o, _ in sink.calls]
    assert offsets == sorted(offsets) and sink.max_active == 1
    assert window.complete and window.missing() == RangeSet() and window.held == 0
    assert window.peak_held <= capacity


def test_window_full_blocks_the_producer_until_the_next_block_arrives() -> None:
    sink = Sink()
    window = ReorderWindow(RangeSet.span(0, 40), sink, capacity=20)
    window.put(10, b"b" * 10)
    window.put(20, b"c" * 10)  # the window is now full
    done = threading.Event()
    t = threading.Thread(target=lambda: (window.put(30, b"d" * 10), done.set()))
    t.start()
    assert not done.wait(0.3)  # back-pressure: this producer stops reading
    window.put(0, b"a" * 10)  # the next block goes straight through, then the held ones
    assert done.wait(5)
    t.join(5)
    assert sink.joined() == b"a" * 10 + b"b" * 10 + b"c" * 10 + b"d" * 10
    assert window.complete


def test_expected_ranges_skip_the_bytes_already_held() -> None:
    sink = Sink()
    window = ReorderWindow(RangeSet.of((0, 5), (10, 15)), sink, capacity=100)
    window.put(10, b"y" * 5)
    assert sink.calls == []
    window.put(0, b"x" * 5)
    assert sink.calls == [(0, b"x" * 5), (10, b"y" * 5)]
    assert window.complete


@pytest.mark.parametrize(
    ("offset", "size", "why"),
    [
        (95, 10, "outside the expected"),  # past the end
        (1 << 60, 1, "outside the expected"),  # absurd
        (-1, 1, "non-negative"),
        (0, 5, "already delivered"),  # repeats delivered bytes
        (22, 5, "overlaps a block already received"),  # overlaps a held block
        (18, 5, "overlaps a block already received"),
    ],
)
def test_bad_blocks_are_refused_and_deliver_nothing(offset: int, size: int, why: str) -> None:
    sink = Sink()
    window = ReorderWindow(RangeSet.span(0, 100), sink, capacity=1000)
    window.put(0, b"a" * 10)
    window.put(20, b"b" * 5)
    with pytest.raises(OutOfOrder, match=why):
        window.put(offset, b"z" * size)
    assert sink.calls == [(0, b"a" * 10)]
    assert window.missing() == RangeSet.span(10, 100)


def test_a_window_that_stands_still_stalls() -> None:
    window = ReorderWindow(RangeSet.span(0, 100), Sink(), capacity=10, stall_timeout=0.3)
    window.put(50, b"x" * 10)
    t0 = time.monotonic()
    with pytest.raises(WindowStalled, match="offset 0"):
        window.put(70, b"y" * 10)  # the window is full, offset 0 never comes
    assert 0.25 < time.monotonic() - t0 < 5


def test_a_failing_sink_stops_every_producer() -> None:
    def sink(offset: int, view: memoryview) -> None:
        raise OSError("disk on fire")

    window = ReorderWindow(RangeSet.span(0, 30), sink, capacity=0)
    raised: list[BaseException] = []
    t = threading.Thread(target=lambda: _catch(raised, lambda: window.put(10, b"b" * 10)))
    t.start()
    with pytest.raises(OSError, match="on fire"):
        window.put(0, b"a" * 10)
    t.join(5)
    assert len(raised) == 1 and isinstance(raised[0], OSError)


def test_stop_wakes_waiters_and_turn_orders_actions() -> None:
    window = ReorderWindow(RangeSet.span(0, 30))
    order: list[int] = []
    raised: list[BaseException] = []

    def in_turn(offset: int) -> None:
        with window.turn(offset, 10):
            order.append(offset)

    threads = [threading.Thread(target=_catch, args=(raised, lambda o=o: in_turn(o))) for o in (20, 10, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert order == [0, 10, 20] and raised == []
    other = ReorderWindow(RangeSet.span(0, 30))
    t = threading.Thread(target=_catch, args=(raised, lambda: other.put(10, b"x" * 10)))
    t.start()
    assert _waiting(t), "put() of a block whose turn has not come did not wait"
    other.stop()
    t.join(5)
    assert len(raised) == 1 and isinstance(raised[0], Stopped)


def _waiting(thread: threading.Thread, timeout: float = 10) -> bool:
    """Whether ``thread`` reaches a ``Condition.wait`` (inside the window) within ``timeout``."""
    import sys

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(thread.ident or -1)
        while frame is not None:
            if frame.f_code.co_name == "wait" and frame.f_code.co_filename.endswith("threading.py"):
                return True
            frame = frame.f_back
        time.sleep(0.001)  # polling the thread's stack, with a deadline
    return False


def _catch(into: list[BaseException], fn) -> None:  # noqa: ANN001
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001
        into.append(exc)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_arrival_order_within_capacity_comes_out_sorted(data: st.DataObject) -> None:
    cuts = sorted(set(data.draw(st.lists(st.integers(1, 499), max_size=30))))
    bounds = [0, *cuts, 500]
    blocks = [(a, bytes([i % 251]) * (b - a)) for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False))]
    order = data.draw(st.permutations(blocks))
    sink = Sink()
    window = ReorderWindow(RangeSet.span(0, 500), sink, capacity=500)
    for offset, chunk in order:
        window.put(offset, chunk)
    assert sink.joined() == b"".join(c for _, c in blocks)
    assert window.complete and window.held == 0


# -- blocks given away with a release (transfercore.blockpool) ------------------------------


class Given:
    """Blocks given to a window, each in its own buffer, with releases that record when they come."""

    def __init__(self) -> None:
        self.buffers: dict[int, bytearray] = {}
        self.released: list[int] = []

    def block(self, offset: int, data: bytes) -> tuple[memoryview, Callable[[], None]]:
        buf = bytearray(data)
        self.buffers[offset] = buf
        return memoryview(buf), lambda: self.released.append(offset)


def test_a_given_block_is_held_without_a_copy_and_handed_over_with_its_release() -> None:
    given = Given()
    handed: list[tuple[int, bytes, bool]] = []
    releases: list[Callable[[], None]] = []

    def handover(offset: int, view: memoryview, release: Callable[[], None]) -> None:
        # the very buffer given to the window, not a copy of it
        handed.append((offset, bytes(view), view.obj is given.buffers[offset]))
        releases.append(release)

    window = ReorderWindow(RangeSet.span(0, 30), None, capacity=100, handover=handover)
    window.put(20, *given.block(20, b"c" * 10))
    window.put(10, *given.block(10, b"b" * 10))
    assert window.held == 20 and handed == []
    given.buffers[20][:1] = b"C"  # held as it is: a change to the buffer shows (no copy was made)
    window.put(0, *given.block(0, b"a" * 10))
    assert [(o, d) for o, d, _ in handed] == [(0, b"a" * 10), (10, b"b" * 10), (20, b"C" + b"c" * 9)]
    assert all(same for _, _, same in handed)
    assert given.released == []  # releasing is the handover's, once it is done with each
    for release in releases:
        release()
    assert given.released == [0, 10, 20]


def test_without_a_handover_a_given_block_is_released_once_the_sink_returned() -> None:
    given = Given()
    seen: list[tuple[int, list[int]]] = []
    window = ReorderWindow(RangeSet.span(0, 20), lambda o, v: seen.append((o, list(given.released))), capacity=100)
    window.put(10, *given.block(10, b"b" * 10))
    window.put(0, *given.block(0, b"a" * 10))
    assert seen == [(0, []), (10, [0])]  # each released after its own sink call, not before
    assert given.released == [0, 10]


def test_stopping_a_window_releases_the_given_blocks_it_holds_and_lent_ones_are_copies() -> None:
    given = Given()
    sink = Sink()
    window = ReorderWindow(RangeSet.span(0, 60), sink, capacity=100)
    window.put(10, *given.block(10, b"b" * 10))
    lent = bytearray(b"c" * 10)
    window.put(20, lent)
    lent[:] = b"\xff" * 10  # the lender's next block: must not reach the sink
    window.put(0, bytearray(b"a" * 10))
    assert sink.joined() == b"a" * 10 + b"b" * 10 + b"c" * 10
    assert given.released == [10]
    window.put(40, *given.block(40, b"e" * 10))
    window.put(50, *given.block(50, b"f" * 10))
    window.stop()
    assert given.released == [10, 40, 50]
    assert window.held == 0
    with pytest.raises(Stopped):
        window.put(30, *given.block(30, b"d" * 10))


# -- how much a window holds: little while its sink is slow, more when it starves ------------


def test_a_window_full_because_its_sink_is_slow_does_not_grow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reorder, "START", 10)
    entered, go = threading.Event(), threading.Event()
    sink = Sink()

    def slow(offset: int, view: memoryview) -> None:
        entered.set()
        assert go.wait(10)
        sink(offset, view)

    window = ReorderWindow(RangeSet.span(0, 40), slow, capacity=100)
    errors: list[BaseException] = []
    first = threading.Thread(target=_catch, args=(errors, lambda: window.put(0, b"a" * 10)))
    first.start()
    assert entered.wait(10)
    window.put(10, b"b" * 10)  # held: the window is full at its start
    waiting = threading.Thread(target=_catch, args=(errors, lambda: window.put(20, b"c" * 10)))
    waiting.start()
    time.sleep(20 * reorder.GROW_AFTER)  # many times what a starving window waits before it grows
    assert window.limit == 10 and window.held == 10 and waiting.is_alive()
    go.set()
    for t in (first, waiting):
        t.join(10)
    window.put(30, b"d" * 10)
    assert not errors and sink.joined() == b"a" * 10 + b"b" * 10 + b"c" * 10 + b"d" * 10
    assert window.limit == 10


def test_a_window_starved_of_its_next_block_grows_up_to_its_capacity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reorder, "START", 10)
    sink = Sink()
    window = ReorderWindow(RangeSet.span(0, 100), sink, capacity=40, stall_timeout=5)
    window.put(10, b"b" * 10)
    # the next block (0) is late: later ones still get in, the window doubling as it must
    for offset in (20, 30, 40):
        window.put(offset, bytes([offset]) * 10)
    assert window.held == 40 and window.limit == 40
    late = threading.Thread(target=window.put, args=(50, b"f" * 10))
    late.start()
    time.sleep(20 * reorder.GROW_AFTER)
    assert late.is_alive() and window.limit == 40  # never past its capacity
    window.put(0, b"a" * 10)
    late.join(10)
    for offset in range(60, 100, 10):
        window.put(offset, bytes([offset]) * 10)
    assert sink.joined() == b"".join(
        (b"a" if o == 0 else b"b" if o == 10 else b"f" if o == 50 else bytes([o])) * 10 for o in range(0, 100, 10)
    )
