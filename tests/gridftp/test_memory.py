"""The server gives back what finished transfers left in reference cycles, every few transfers."""

import gc
import weakref

from transfercore.gridftp import memory


class Buffers:
    def __init__(self) -> None:
        self.me = self  # a cycle, as a C callback handle pointing back at its writer makes


def test_cycles_left_by_transfers_are_collected_within_collect_every_transfers(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(memory.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(memory, "_ended", 0)  # as in a fresh server
    monkeypatch.setattr(memory, "_last", 0.0)
    gc.disable()  # only release_garbage may collect here
    try:
        left = []
        for _ in range(memory.COLLECT_EVERY):
            ref = weakref.ref(Buffers())
            left.append(ref)
            memory.release_garbage()
        # every transfer's cycle is gone after COLLECT_EVERY transfers at most...
        assert all(ref() is None for ref in left)
        # ... and not collected after every one (that cost ~0.2 ms of the event loop a file)
        ref = weakref.ref(Buffers())
        memory.release_garbage()
        assert ref() is not None
    finally:
        gc.enable()


def test_transfers_ending_in_quick_succession_are_collected_once_the_interval_has_passed(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(memory.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(memory, "_ended", 0)
    monkeypatch.setattr(memory, "_last", 0.0)
    gc.disable()
    try:
        for _ in range(memory.COLLECT_EVERY):
            memory.release_garbage()  # a collection now: the interval since the last has passed
        refs = []
        for _ in range(3 * memory.COLLECT_EVERY):  # a burst within the interval: no collection
            refs.append(weakref.ref(Buffers()))
            memory.release_garbage()
        assert all(ref() is not None for ref in refs)
        clock[0] += 2 * memory.COLLECT_AFTER
        memory.release_garbage()  # the next transfer's end after the interval collects them all
        assert all(ref() is None for ref in refs)
    finally:
        gc.enable()
