import pytest

from transfercore.contract import ObjectInfo, Reader
from transfercore.engine.identity import SAMPLE_SIZE, fingerprint, sample_offsets, source_identity
from transfercore.errors import TransferCoreError


class MemReader(Reader):
    def __init__(self, data, short=False):
        self.data = bytearray(data)
        self.short = short

    @property
    def size(self):
        return len(self.data)

    def read(self, offset, length):
        out = bytes(self.data[offset : offset + length])
        return out[:-1] if self.short else out


def test_sample_offsets():
    assert sample_offsets(0) == []
    assert sample_offsets(10) == [0]
    big = 10 * SAMPLE_SIZE
    offsets = sample_offsets(big)
    assert offsets[0] == 0 and offsets[-1] == big - SAMPLE_SIZE and offsets == sorted(offsets)


def test_fingerprint_sees_in_place_rewrites_of_sampled_blocks():
    data = bytes(10 * SAMPLE_SIZE)
    base = fingerprint(MemReader(data), len(data))
    for pos in sample_offsets(len(data)):
        changed = bytearray(data)
        changed[pos] = 1
        assert fingerprint(MemReader(changed), len(data)) != base
    assert fingerprint(MemReader(data), len(data)) == base


def test_small_objects_are_hashed_whole():
    data = bytearray(b"x" * 1000)
    base = fingerprint(MemReader(data), 1000)
    data[999] = 0
    assert fingerprint(MemReader(data), 1000) != base


def test_short_read_is_an_error():
    with pytest.raises(TransferCoreError, match="short read"):
        fingerprint(MemReader(b"abc" * 100, short=True), 300)


def test_source_identity_combines_stat_and_fingerprint():
    info = ObjectInfo("/x", 3, 42, identity="9:9")
    ident = source_identity(info, MemReader(b"abc"))
    assert (ident.size, ident.mtime_ns, ident.identity) == (3, 42, "9:9")
    assert ident.fingerprint == fingerprint(MemReader(b"abc"), 3)
