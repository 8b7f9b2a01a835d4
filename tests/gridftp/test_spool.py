import os

import pytest

from transfercore.gridftp.spool import Spool
from transfercore.ranges import RangeSet
from transfercore.testing.loopback import open_paths


class ListWriter:
    def __init__(self, size):
        self.size = size
        self.data = bytearray(size)

    def write(self, offset, data):
        self.data[offset : offset + len(data)] = data


def test_spool_out_of_order_and_copy(tmp_path):
    s = Spool(str(tmp_path))
    assert list(tmp_path.iterdir()) == []  # nameless
    s.write(5, b"world")
    s.write(0, b"hello")
    assert s.received() == RangeSet.span(0, 10)
    w = ListWriter(10)
    s.copy_into(w)
    assert bytes(w.data) == b"helloworld"
    s.close()


def test_spool_short_copy_fails(tmp_path):
    from transfercore.errors import InvalidWrite

    s = Spool(str(tmp_path))
    s.write(0, b"abc")
    with pytest.raises(InvalidWrite):
        s.copy_into(ListWriter(10))
    s.close()


def test_durable_spool_records_ranges_and_resumes(tmp_path):
    from transfercore.errors import RestartRejected

    s = Spool(str(tmp_path), key="posix:///a.bin")
    s.write(0, b"abc")
    s.write(10, b"xyz")
    assert s.durable() == RangeSet.of((0, 3), (10, 13))
    s.write(3, b"def")  # written, not yet durable: a crash now loses it
    s.close()
    with pytest.raises(RestartRejected, match="not all durable"):
        Spool(str(tmp_path), key="posix:///a.bin", resume=RangeSet.span(0, 6))
    again = Spool(str(tmp_path), key="posix:///a.bin", resume=RangeSet.of((0, 3), (10, 13)))
    assert again.received() == RangeSet.of((0, 3), (10, 13))
    again.write(3, b"defghij")
    assert again.received() == RangeSet.span(0, 13)
    again.discard()
    assert list(tmp_path.iterdir()) == []
    # Another object's key has its own spool; a fresh upload forgets an old one.
    with pytest.raises(RestartRejected):
        Spool(str(tmp_path), key="posix:///b.bin", resume=RangeSet.span(0, 1))


def test_a_memory_first_spool_that_ends_small_never_touches_the_disk(tmp_path):
    s = Spool(str(tmp_path), key="posix:///m.bin", memory_until=1024)
    s.write(4, b"5678")
    s.write(0, b"1234")
    assert s.in_memory and s.restartable
    assert list(tmp_path.iterdir()) == []
    w = ListWriter(8)
    s.copy_into(w)
    assert bytes(w.data) == b"12345678"
    s.discard()
    assert list(tmp_path.iterdir()) == []


def test_a_spool_pinned_in_memory_names_nothing_durable_until_released(tmp_path):
    """Copied out while a marker is due: it stays in memory (its descriptor stays valid), the marker names nothing."""
    s = Spool(str(tmp_path), key="posix:///p.bin", memory_until=1024)
    s.write(0, b"abcdef")
    with s.pinned_in_memory() as pinned:
        assert pinned
        assert s.durable() == RangeSet()
        assert s.in_memory and list(tmp_path.iterdir()) == []
        w = ListWriter(6)
        s.copy_into(w)
        assert bytes(w.data) == b"abcdef"
    # released: the next marker moves it to its file and names what is there
    assert s.durable() == RangeSet.span(0, 6)
    assert not s.in_memory
    with s.pinned_in_memory() as pinned:
        assert not pinned  # a file spool is not held: its markers go on
        assert s.durable() == RangeSet.span(0, 6)
    s.discard()


def test_a_memory_first_spool_is_on_disk_before_its_first_marker(tmp_path):
    """A marker makes the spool a file: what it names is durable there and resumes."""
    from transfercore.errors import RestartRejected

    s = Spool(str(tmp_path), key="posix:///m.bin", memory_until=1024)
    s.write(0, b"abc")
    s.write(10, b"xyz")
    assert s.durable() == RangeSet.of((0, 3), (10, 13))
    assert not s.in_memory
    s.write(3, b"def")  # into the file now, not durable yet
    s.close()
    with pytest.raises(RestartRejected, match="not all durable"):
        Spool(str(tmp_path), key="posix:///m.bin", resume=RangeSet.span(0, 6))
    again = Spool(str(tmp_path), key="posix:///m.bin", resume=RangeSet.of((0, 3), (10, 13)))
    again.write(3, b"defghij")
    w = ListWriter(13)
    again.copy_into(w)
    assert bytes(w.data) == b"abcdefghijxyz"
    again.discard()
    assert list(tmp_path.iterdir()) == []


def test_a_memory_first_spool_that_outgrows_memory_moves_to_its_file_unrecorded(tmp_path):
    """Past the bound the bytes go to the file, but no marker names them until durable()."""
    from transfercore.errors import RestartRejected

    s = Spool(str(tmp_path), key="posix:///g.bin", memory_until=8)
    s.write(0, b"0123")
    assert s.in_memory
    s.write(4, b"456789")
    assert not s.in_memory
    s.write(10, b"ab")
    assert any(p.name.endswith(".tcpart") and ".ranges." not in p.name for p in tmp_path.iterdir())
    w = ListWriter(12)
    s.copy_into(w)
    assert bytes(w.data) == b"0123456789ab"
    s.close()
    with pytest.raises(RestartRejected):
        Spool(str(tmp_path), key="posix:///g.bin", resume=RangeSet.span(0, 4))


def test_a_memory_first_spool_forgets_a_stale_spool_of_the_same_object(tmp_path):
    from transfercore.errors import RestartRejected

    old = Spool(str(tmp_path), key="posix:///s.bin")
    old.write(0, b"old")
    assert old.durable() == RangeSet.span(0, 3)
    old.close()
    fresh = Spool(str(tmp_path), key="posix:///s.bin", memory_until=1024)
    assert list(tmp_path.iterdir()) == []
    fresh.write(0, b"new")
    fresh.close()
    with pytest.raises(RestartRejected):
        Spool(str(tmp_path), key="posix:///s.bin", resume=RangeSet.span(0, 3))


def _spool_descriptors() -> list[str]:
    return open_paths(os.getpid(), "tc-gridftp-spool", "tc-spool-")


def test_a_spool_in_memory_holds_no_descriptor_and_a_hole_reads_as_zeros(tmp_path):
    before = set(_spool_descriptors())
    s = Spool(str(tmp_path), key="posix:///h.bin", memory_until=1024)
    s.write(6, b"gh")  # past the end: the gap is a hole, as in a sparse file
    s.write(0, b"ab")
    assert s.in_memory and set(_spool_descriptors()) == before
    assert s.received() == RangeSet.of((0, 2), (6, 8))
    s.write(2, b"cdef")
    w = ListWriter(8)
    s.copy_into(w)
    assert bytes(w.data) == b"abcdefgh"
    # moved to its file, what was in memory is there, holes and all
    t = Spool(str(tmp_path), key="posix:///t.bin", memory_until=1024)
    t.write(4, b"zz")
    assert t.durable() == RangeSet.span(4, 6)
    assert [p.read_bytes() for p in tmp_path.iterdir() if ".ranges." not in p.name] == [b"\0\0\0\0zz"]
    s.discard()
    t.discard()


def test_a_spool_without_a_record_starts_in_memory_then_moves_to_anonymous_memory(tmp_path):
    """Storage without local paths: no record, no markers; past the bound the bytes go to a memfd."""
    before = set(_spool_descriptors())
    s = Spool(None, memory_until=8)
    s.write(0, b"0123")
    assert s.in_memory and not s.restartable and set(_spool_descriptors()) == before
    assert s.durable() == RangeSet()  # nothing durable, and it stays in memory
    assert s.in_memory
    s.write(4, b"456789")
    assert not s.in_memory
    assert [t for t in set(_spool_descriptors()) - before if t.startswith("/memfd:tc-gridftp-spool")]
    w = ListWriter(10)
    s.copy_into(w)
    assert bytes(w.data) == b"0123456789"
    s.discard()
    assert set(_spool_descriptors()) == before
    assert list(tmp_path.iterdir()) == []
