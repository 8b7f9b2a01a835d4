from hypothesis import given
from hypothesis import strategies as st
from transfercore_posix.intervals import Intervals

from transfercore.ranges import RangeSet

spans = st.lists(st.tuples(st.integers(0, 200), st.integers(0, 40)).map(lambda t: (t[0], t[0] + t[1])), max_size=30)


@given(spans)
def test_add_agrees_with_rangeset_union(pairs):
    iv = Intervals()
    model = RangeSet()
    for a, b in pairs:
        iv.add(a, b)
        model = model | RangeSet.span(a, b)
        assert iv.to_rangeset() == model
    assert iv.total() == model.total()
    assert len(iv) == len(model)


@given(spans, st.integers(0, 240), st.integers(0, 40))
def test_overlaps_and_covers_agree_with_rangeset(pairs, start, length):
    iv = Intervals()
    for a, b in pairs:
        iv.add(a, b)
    model = iv.to_rangeset()
    probe = RangeSet.span(start, start + length)
    assert iv.overlaps(start, start + length) == bool(model & probe)
    assert iv.covers(start, start + length) == model.contains(probe)


def test_adjacent_writes_merge_into_one_interval():
    iv = Intervals()
    for i in range(1000):
        iv.add(i * 10, i * 10 + 10)
    assert len(iv) == 1
    assert iv.to_rangeset() == RangeSet.span(0, 10_000)


def test_starts_from_an_existing_set():
    iv = Intervals(RangeSet.of((0, 5), (10, 20)))
    assert iv.overlaps(4, 6) and not iv.overlaps(5, 10)
