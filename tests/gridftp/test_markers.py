import pytest

from transfercore.gridftp.control import Reply
from transfercore.gridftp.errors import LocalProtocolError, RemoteProtocolError
from transfercore.gridftp.markers import (
    PerfMarker,
    RestartMarkers,
    parse_perf_marker,
    parse_range_marker,
    perf_marker,
    restart_marker,
)
from transfercore.ranges import RangeSet


def test_restart_marker_format_and_parse():
    r = restart_marker(RangeSet.of((0, 281280512), (281346048, 281411584)))
    assert r.encode() == b"111 Range Marker 0-281280512,281346048-281411584\r\n"
    assert parse_range_marker(r.encode().decode()) == RangeSet.of((0, 281280512), (281346048, 281411584))
    with pytest.raises(LocalProtocolError):
        restart_marker(RangeSet())
    for bad in ("111 Range Marker", "112 Range Marker 0-1", "111 Range Marker 5-1"):
        with pytest.raises(RemoteProtocolError):
            parse_range_marker(bad)


def test_perf_marker_roundtrip_and_lenient_spacing():
    m = PerfMarker(1795612028.34, 0, 281477120, 1)
    text = perf_marker(m).encode().decode()
    assert text.startswith("112-Perf Marker\r\n Timestamp:  1795612028.3\r\n")
    assert text.endswith("112 End.\r\n")
    assert parse_perf_marker(text).stripe_bytes == 281477120
    alt = "112-Perf Marker\n Timestamp: 5.5\n Stripe Index:  1\n Stripe  Bytes Transferred: 7\n Total Stripe Count: 2\n112 End."
    assert parse_perf_marker(alt) == PerfMarker(5.5, 1, 7, 2)
    with pytest.raises(RemoteProtocolError):
        parse_perf_marker("112-Perf Marker\n112 End.")


def test_deltas_only_new_ranges():
    rm = RestartMarkers(RangeSet.span(0, 10))  # resumed ranges are not re-announced
    assert rm.update(RangeSet.span(0, 10)) is None
    r = rm.update(RangeSet.of((0, 20), (30, 40)))
    assert isinstance(r, Reply) and r.lines[0] == "Range Marker 10-20,30-40"
    assert rm.update(RangeSet.of((0, 20), (30, 40))) is None
    assert rm.update(RangeSet.span(0, 40)).lines[0] == "Range Marker 20-30"
    with pytest.raises(LocalProtocolError, match="lost ranges"):
        rm.update(RangeSet.span(0, 30))


def test_marker_schedule():
    from transfercore.gridftp.markers import MarkerSchedule

    s = MarkerSchedule(100.0, restart_every=5.0, perf_every=2.0)
    assert s.next_due() == 102.0
    assert s.due(101.0) == (False, False)
    assert s.due(102.0) == (True, False)
    assert s.next_due() == 104.0
    assert s.due(105.0) == (True, True)
    assert s.next_due() == 107.0
    quiet = MarkerSchedule(0.0, restart_every=1.0, perf_every=3.0, restart=False)
    assert quiet.due(10.0) == (True, False)


def test_the_last_marker_names_everything_even_a_periodic_one_never_sent():
    # The periodic marker task can be cancelled after its cursor moved and before
    # its reply went out: the last 111 must still leave the client's record whole.
    markers = RestartMarkers()
    lost = markers.update(RangeSet.span(0, 1000))  # taken, then cancelled before sending
    assert lost is not None
    final = markers.final(RangeSet.span(0, 1500))
    assert final is not None and parse_range_marker(final.encode().decode().strip()) == RangeSet.span(0, 1500)
