"""The server gives back what finished transfers left in reference cycles, every few transfers."""

import gc
import weakref

from transfercore.gridftp import memory


class Buffers:
    def __init__(self) -> None:
        self.me = self  # a cycle, as a C callback handle pointing back at its writer makes


def test_cycles_left_by_transfers_are_collected_within_collect_every_transfers():
    gc.disable()  # only release_garbage may collect here
    memory._ended = 0  # as in a fresh server
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
