from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from transfercore_globus_dsi.restart import TO_END, held_marker

from transfercore.errors import RestartRejected
from transfercore.ranges import RangeSet


def test_no_rest_is_a_fresh_upload():
    assert held_marker([(0, TO_END)], 100) is None
    assert held_marker([], 100) is None
    assert held_marker([(0, TO_END)], None) is None


def test_stream_rest_n_holds_the_prefix():
    assert held_marker([(4096, TO_END)], 10000) == RangeSet.span(0, 4096)


def test_mode_e_ranges_are_the_complement():
    # the client holds 0-100 and 200-300 of 1000: the server asks for the rest
    to_receive = [(100, 100), (300, TO_END)]
    assert held_marker(to_receive, 1000) == RangeSet.of((0, 100), (200, 300))


def test_restart_without_size_is_refused():
    with pytest.raises(RestartRejected, match="without ALLO"):
        held_marker([(10, TO_END)], None)


def test_impossible_range_is_refused():
    with pytest.raises(RestartRejected, match="impossible"):
        held_marker([(10, -5)], 100)


@given(st.lists(st.tuples(st.integers(0, 999), st.integers(1, 200)), max_size=6), st.integers(1, 1000))
def test_held_and_to_receive_partition_the_object(spans, size):
    to_receive = RangeSet.of(*[(a, a + n) for a, n in spans]).clip(size)
    held = held_marker([(r.start, r.length) for r in to_receive] or [(0, TO_END)], size)
    if held is None:
        return
    assert (held | to_receive) == RangeSet.span(0, size)
    assert not (held & to_receive)


def test_unsized_rest_holds_what_lies_before_the_open_range_minus_its_holes():
    from transfercore_globus_dsi.restart import held_unsized

    assert held_unsized([(0, TO_END)]) is None
    assert held_unsized([]) is None
    assert held_unsized([(4096, TO_END)]) == RangeSet.span(0, 4096)
    # REST 0-100,200-300: the server will send 100-200 and 300 onwards
    assert held_unsized([(100, 100), (300, TO_END)]) == RangeSet.of((0, 100), (200, 300))
    with pytest.raises(RestartRejected):
        held_unsized([(100, 100)])  # no open end: not an upload of unknown size
    with pytest.raises(RestartRejected):
        held_unsized([(-1, TO_END)])
