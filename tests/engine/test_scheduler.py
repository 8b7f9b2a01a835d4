import pytest
from hypothesis import given
from hypothesis import strategies as st

from transfercore.engine.scheduler import plan_blocks
from transfercore.ranges import RangeSet


def test_fresh_plan_covers_everything_in_order():
    blocks = plan_blocks(10, RangeSet(), 4, include_have=True)
    assert [(b.start, b.end, b.write) for b in blocks] == [(0, 4, True), (4, 8, True), (8, 10, True)]
    assert [b.index for b in blocks] == [0, 1, 2]
    assert [b.write_index for b in blocks] == [0, 1, 2]


def test_resumed_ranges_are_read_only_for_the_checksum():
    blocks = plan_blocks(12, RangeSet.of((0, 5)), 4, include_have=True)
    assert [(b.start, b.end, b.write) for b in blocks] == [
        (0, 4, False), (4, 5, False), (5, 8, True), (8, 12, True)]
    assert [b.write_index for b in blocks] == [-1, -1, 0, 1]


def test_without_checksum_resumed_ranges_are_skipped():
    blocks = plan_blocks(12, RangeSet.of((0, 8)), 4, include_have=False)
    assert [(b.start, b.end) for b in blocks] == [(8, 12)]


def test_marker_past_the_size_is_clipped():
    blocks = plan_blocks(6, RangeSet.of((0, 100)), 4, include_have=False)
    assert blocks == []


def test_empty_object_has_no_blocks():
    assert plan_blocks(0, RangeSet(), 4, include_have=True) == []


def test_bad_block_size():
    with pytest.raises(ValueError):
        plan_blocks(5, RangeSet(), 0, include_have=True)


@given(st.integers(0, 300), st.lists(st.tuples(st.integers(0, 300), st.integers(0, 60))), st.integers(1, 50), st.booleans())
def test_plan_properties(size, pairs, block_size, include_have):
    have = RangeSet.of(*((a, a + n) for a, n in pairs))
    blocks = plan_blocks(size, have, block_size, include_have=include_have)
    written = RangeSet.of(*((b.start, b.end) for b in blocks if b.write))
    assert written == have.clip(size).complement(size)  # exactly the missing bytes are written
    assert all(0 < b.length <= block_size for b in blocks)
    assert [b.start for b in blocks] == sorted(b.start for b in blocks)
    assert [b.write_index for b in blocks if b.write] == list(range(sum(b.write for b in blocks)))
    if include_have:
        assert RangeSet.of(*((b.start, b.end) for b in blocks)) == RangeSet.span(0, size)
        assert sum(b.length for b in blocks) == size
