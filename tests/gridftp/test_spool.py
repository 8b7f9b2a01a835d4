import pytest

from transfercore.gridftp.spool import Spool
from transfercore.ranges import RangeSet


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
