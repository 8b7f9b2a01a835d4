import threading

import pytest

from transfercore.checksums import digest_bytes
from transfercore.engine.verify import DurableVerifier
from transfercore.errors import StorageError, TransferAborted, TransferCoreError

DATA = bytes((i * 13) % 256 for i in range(50_000))


class Store:
    """Reads from ``data``; records every read and refuses reads past the durable limit."""

    def __init__(self, data):
        self.data = bytearray(data)
        self.limit = 0
        self.reads = []
        self.fail_at = None

    def read_into(self, offset, view):
        end = offset + len(view)
        assert end <= self.limit, f"read {offset}-{end} past the durable limit {self.limit}"
        if self.fail_at is not None and offset <= self.fail_at < end:
            raise StorageError("disk on fire")
        self.reads.append((offset, end))
        view[:] = self.data[offset:end]


def advance(verifier, store, end):
    store.limit = end
    verifier.advance(end)


def test_hashes_the_whole_object_in_order_never_past_the_durable_prefix():
    store = Store(DATA)
    verifier = DurableVerifier(store.read_into, len(DATA), "crc32c", 4096)
    verifier.start()
    for end in (10_000, 10_000, 25_001, 40_000, len(DATA)):
        advance(verifier, store, end)
    assert verifier.finish() == digest_bytes("crc32c", DATA)
    starts = [r[0] for r in store.reads]
    assert starts == sorted(starts) and store.reads[0][0] == 0
    assert all(b - a <= 4096 for a, b in store.reads)
    assert sum(b - a for a, b in store.reads) == len(DATA)  # each byte read once


def test_the_digest_is_of_what_is_stored():
    store = Store(DATA)
    store.data[30_000] ^= 1
    verifier = DurableVerifier(store.read_into, len(DATA), "md5", 8192)
    verifier.start()
    advance(verifier, store, len(DATA))
    assert verifier.finish() == digest_bytes("md5", bytes(store.data)) != digest_bytes("md5", DATA)


def test_finishing_before_the_final_prefix_is_refused():
    store = Store(DATA)
    verifier = DurableVerifier(store.read_into, len(DATA), "crc32c", 4096)
    verifier.start()
    advance(verifier, store, 20_000)
    with pytest.raises(TransferCoreError, match="bug in the engine"):
        verifier.finish()
    verifier.stop()
    verifier.join()


def test_a_read_error_is_reported_and_wakes_the_control_thread():
    store = Store(DATA)
    store.fail_at = 12_345
    wake = threading.Event()
    verifier = DurableVerifier(store.read_into, len(DATA), "crc32c", 4096, wake=wake)
    verifier.start()
    advance(verifier, store, len(DATA))
    assert wake.wait(5)
    assert isinstance(verifier.error, StorageError)
    with pytest.raises(StorageError, match="disk on fire"):
        verifier.finish()


def test_stop_ends_a_waiting_verifier():
    store = Store(DATA)
    verifier = DurableVerifier(store.read_into, len(DATA), "crc32c", 4096)
    verifier.start()
    advance(verifier, store, 5000)
    verifier.stop()
    verifier.join()
    assert verifier.verified <= 5000
    verifier.advance(len(DATA))
    with pytest.raises(TransferAborted):
        verifier.finish()


def test_an_empty_object():
    verifier = DurableVerifier(Store(b"").read_into, 0, "adler32", 4096)
    verifier.start()
    verifier.advance(0)
    assert verifier.finish() == digest_bytes("adler32", b"")
