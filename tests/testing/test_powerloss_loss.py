"""lost_bytes: marked bytes whose page no longer matches the source after a cut."""

from transfercore.ranges import RangeSet
from transfercore.testing.powerloss.loss import lost_bytes


def test_lost_bytes_counts_differing_pages(tmp_path):
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.write_bytes(b"x" * 10000)
    b.write_bytes(b"x" * 5000 + b"y" * 5000)
    assert lost_bytes(a, b, RangeSet.span(0, 4096)) == 0
    assert lost_bytes(a, b, RangeSet.span(0, 10000)) == 5000 + 904  # the page holding byte 5000
    assert lost_bytes(a, None, RangeSet.span(0, 100)) == 100


def test_a_short_survivor_loses_its_missing_tail(tmp_path):
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.write_bytes(b"x" * 8192)
    b.write_bytes(b"x" * 4096)
    assert lost_bytes(a, b, RangeSet.span(0, 8192)) == 4096
