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
