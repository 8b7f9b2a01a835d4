import pytest
from hypothesis import given
from hypothesis import strategies as st

from transfercore.errors import RangeSyntaxError
from transfercore.ranges import MAX_OFFSET, ByteRange, RangeSet, parse_stream_offset

SIZE = 200

pairs = st.tuples(st.integers(0, SIZE), st.integers(0, SIZE)).map(lambda p: (min(p), max(p)))
range_sets = st.lists(pairs, max_size=8).map(lambda ps: RangeSet.of(*ps))


def as_bytes(rs: RangeSet) -> set[int]:
    return {i for r in rs for i in range(r.start, r.end)}


@given(range_sets, range_sets)
def test_union_difference_intersection_match_byte_sets(a, b):
    assert as_bytes(a | b) == as_bytes(a) | as_bytes(b)
    assert as_bytes(a - b) == as_bytes(a) - as_bytes(b)
    assert as_bytes(a & b) == as_bytes(a) & as_bytes(b)


@given(range_sets)
def test_normalized_form_is_sorted_disjoint_and_non_adjacent(a):
    for left, right in zip(a.ranges, a.ranges[1:], strict=False):
        assert left.end < right.start
    assert all(r.length > 0 for r in a)


@given(st.lists(pairs, max_size=8))
def test_a_tuple_normalizes_as_any_other_iterable(ps):
    # a tuple already normal is taken as it is; any other is sorted and merged
    ranges = [ByteRange(a, b) for a, b in ps]
    from_tuple, from_list = RangeSet(tuple(ranges)), RangeSet(iter(ranges))
    assert from_tuple == from_list
    assert as_bytes(from_tuple) == {i for r in ranges for i in range(r.start, r.end)}
    assert RangeSet(from_tuple.ranges).ranges is from_tuple.ranges


@given(range_sets)
def test_format_then_parse_round_trips(a):
    if a:
        assert RangeSet.parse(str(a)) == a
    else:
        assert str(a) == ""


@given(range_sets, st.integers(0, SIZE))
def test_complement_is_exactly_the_missing_bytes(a, size):
    missing = a.complement(size)
    assert as_bytes(missing) == set(range(size)) - as_bytes(a)
    assert (missing | a.clip(size)) == RangeSet.span(0, size) or size == 0


@given(range_sets, range_sets)
def test_containment_agrees_with_byte_sets(a, b):
    assert a.contains(b) == (as_bytes(b) <= as_bytes(a))
    for i in (0, 5, SIZE - 1):
        assert (i in a) == (i in as_bytes(a))


@given(range_sets)
def test_prefix_end_is_the_longest_contiguous_prefix(a):
    n = a.prefix_end()
    assert set(range(n)) <= as_bytes(a)
    assert n not in as_bytes(a)
    assert a.prefix() == RangeSet.span(0, n)


def test_parse_merges_overlap_and_repetition_as_clients_do():
    assert RangeSet.parse("200-300,0-100,50-150,0-100") == RangeSet.of((0, 150), (200, 300))
    assert str(RangeSet.parse("0-10,10-20")) == "0-20"
    assert RangeSet.parse("0-281280512,281346048-281411584").total() == 281280512 + 65536


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("-5-10", "'-5-10'"),
        ("10-5", "'10-5'"),
        ("a-10", "'a'"),
        ("0-10,,20-30", "''"),
        ("0-10,20", "'20'"),
        ("0-1e3", "'1e3'"),
        ("0 -10", "'0 '"),
        ("0-99999999999999999999999", "99999999999999999999999"),
        ("0-9223372036854775808", "9223372036854775808"),
        ("0-١٢", "'١٢'"),
    ],
)
def test_malformed_range_lists_raise_errors_quoting_the_bad_part(text, quoted):
    with pytest.raises(RangeSyntaxError) as info:
        RangeSet.parse(text)
    assert quoted in str(info.value)


def test_absurdly_many_ranges_are_refused():
    text = ",".join(f"{i * 2}-{i * 2 + 1}" for i in range(20_001))
    with pytest.raises(RangeSyntaxError, match="more than the limit"):
        RangeSet.parse(text)
    assert len(RangeSet.parse(text, max_ranges=30_000)) == 20_001


def test_byte_range_validates_itself():
    with pytest.raises(RangeSyntaxError, match="negative"):
        ByteRange(-1, 3)
    with pytest.raises(RangeSyntaxError, match="reversed"):
        ByteRange(5, 3)
    with pytest.raises(RangeSyntaxError, match="largest offset"):
        ByteRange(0, MAX_OFFSET + 1)
    assert len(ByteRange(3, 10)) == 7


def test_stream_offsets():
    assert parse_stream_offset("0") == 0
    assert parse_stream_offset(" 12345\r\n") == 12345
    for bad in ("", "-1", "1.5", "0x10", "12 34", str(MAX_OFFSET + 1)):
        with pytest.raises(RangeSyntaxError):
            parse_stream_offset(bad)


def test_sets_are_immutable_values():
    a = RangeSet.of((0, 10))
    b = a | RangeSet.of((20, 30))
    assert a == RangeSet.of((0, 10))
    assert hash(a) == hash(RangeSet.parse("0-10"))
    with pytest.raises(AttributeError):
        a.ranges = ()  # type: ignore[misc]
    assert b.end() == 30 and RangeSet().end() == 0
