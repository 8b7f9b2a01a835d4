"""The core's marker cursor: when to ask durable(), what to believe, what to announce."""

from __future__ import annotations

import pytest

from transfercore.gridftp.upload import shift
from transfercore.markers import MarkerBroken, MarkerCursor, MarkerPolicy
from transfercore.ranges import RangeSet


class _Writer:
    def __init__(self, *answers: RangeSet) -> None:
        self.answers = list(answers)
        self.calls = 0

    def durable(self) -> RangeSet:
        self.calls += 1
        return self.answers.pop(0)


def test_deltas_name_only_new_ranges_and_never_the_start():
    cursor = MarkerCursor(RangeSet.span(0, 10))
    assert not cursor.accept(RangeSet.span(0, 10))
    assert cursor.accept(RangeSet.of((0, 20), (30, 40))) == RangeSet.of((10, 20), (30, 40))
    assert not cursor.accept(RangeSet.of((0, 20), (30, 40)))
    assert cursor.accept(RangeSet.span(0, 40)) == RangeSet.span(20, 30)
    assert cursor.reported == cursor.durable == RangeSet.span(0, 40)


def test_a_shrinking_set_is_refused_and_changes_nothing():
    cursor = MarkerCursor()
    cursor.accept(RangeSet.span(0, 30))
    with pytest.raises(MarkerBroken, match="lost ranges"):
        cursor.accept(RangeSet.span(0, 20))
    assert cursor.durable == RangeSet.span(0, 30)


def test_a_set_beyond_the_written_bytes_is_refused():
    cursor = MarkerCursor()
    with pytest.raises(MarkerBroken, match="never written"):
        cursor.accept(RangeSet.span(0, 30), written=RangeSet.span(0, 20))
    assert not cursor.durable


def test_take_asks_the_writer_once_and_waits_briefly_for_late_bookkeeping():
    writer = _Writer(RangeSet.span(0, 8))
    seen = [RangeSet.span(0, 4), RangeSet.span(0, 8)]  # the second read sees the late write
    cursor = MarkerCursor()
    assert cursor.take(writer, written=lambda: seen.pop(0) if len(seen) > 1 else seen[0]) == RangeSet.span(0, 8)
    assert writer.calls == cursor.calls == 1
    with pytest.raises(MarkerBroken, match="never written"):
        cursor.take(_Writer(RangeSet.span(0, 9)), written=lambda: RangeSet.span(0, 8), grace=0.01)


def test_a_view_names_an_update_slice_from_its_own_start():
    # the slice 100-200 of the object, named from 0 in the markers
    cursor = MarkerCursor(RangeSet.span(0, 100), view=lambda r: shift(r & RangeSet.span(100, 200), -100))
    assert not cursor.reported
    assert cursor.accept(RangeSet.span(0, 150)) == RangeSet.span(0, 50)
    assert cursor.accept(RangeSet.span(0, 300)) == RangeSet.span(50, 100)


def test_due_by_time_or_bytes_and_never_without_new_bytes():
    cursor = MarkerCursor(policy=MarkerPolicy(interval=5, bytes=100), now=10.0)
    assert not cursor.due(100.0, 0)  # nothing new: a flush would only cost time
    assert not cursor.due(12.0, 50)
    assert cursor.due(15.0, 1)
    assert cursor.due(11.0, 100)
    cursor.mark_taken(11.0, 100)
    assert not cursor.due(12.0, 150)
    assert cursor.seconds_until_due(12.0) == 4.0
    assert MarkerCursor().seconds_until_due(1e9) is None
