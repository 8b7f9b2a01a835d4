import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transfercore.gridftp import arguments as A
from transfercore.gridftp.errors import BadArgument
from transfercore.ranges import RangeSet


def test_type_and_mode():
    assert A.parse_type("i") == "I"
    assert A.parse_type("A N") == "A"
    assert A.parse_type("L 8") == "I"
    assert A.parse_mode(" e ") == "E"
    with pytest.raises(BadArgument, match="unrecognized transfer mode"):
        A.parse_mode("X")
    with pytest.raises(BadArgument):
        A.parse_type("E")


def test_alloc():
    assert A.parse_alloc("1048576") == 1048576
    assert A.parse_alloc("10 R 5") == 10
    for bad in ("", "-1", "1e6", "10 R", "99999999999999999999"):
        with pytest.raises(BadArgument):
            A.parse_alloc(bad)


def test_rest_stream_and_ranges():
    assert A.parse_rest("100", "S") == RangeSet.span(0, 100)
    assert A.parse_rest("0-100,200-300", "E") == RangeSet.of((0, 100), (200, 300))
    assert A.parse_rest("0-10,5-20", "E") == RangeSet.span(0, 20)
    assert A.parse_rest("0", "S") == RangeSet()
    with pytest.raises(BadArgument, match="MODE E"):
        A.parse_rest("0-100", "S")
    for bad in ("", "abc", "10-5", "-5", "1-2,", "1-9223372036854775808"):
        with pytest.raises(BadArgument):
            A.parse_rest(bad, "E")


def test_opts_retr_parallelism():
    assert A.parse_opts("RETR Parallelism=4,4,4;") == ("RETR", "Parallelism=4,4,4;")
    assert A.parse_retr_opts("Parallelism=4,2,8;") == A.Parallelism(4, 2, 8)
    assert A.parse_retr_opts("") is None
    for bad in ("Parallelism=4,4;", "Parallelism=0,1,1;", "Parallelism=1000,1,1;", "Bogus=1;", "Parallelism"):
        with pytest.raises(BadArgument):
            A.parse_retr_opts(bad)


def test_trev_site_bufsize():
    assert A.parse_trev("RESTART 2") == ("RESTART", 2.0)
    assert A.parse_trev("perf=0.5") == ("PERF", 0.5)
    for bad in ("", "RESTART", "FOO 1", "RESTART x", "RESTART 0"):
        with pytest.raises(BadArgument):
            A.parse_trev(bad)
    assert A.parse_site("storbufsize 1000") == ("STORBUFSIZE", "1000")
    assert A.parse_site('CLIENTINFO scheme=ftp;appname="x"') == ("CLIENTINFO", 'scheme=ftp;appname="x"')
    with pytest.raises(BadArgument):
        A.parse_site("")
    with pytest.raises(BadArgument):
        A.parse_bufsize("-1")


def test_cksm():
    req = A.parse_cksm("md5 0 -1 /a b/c")
    assert req == A.ChecksumRequest("MD5", 0, None, "/a b/c")
    assert A.parse_cksm("ADLER32 10 20 /x").length == 20
    for bad in ("MD5 0 -1", "FOO 0 -1 /x", "MD5 x -1 /x", "MD5 0 -2 /x"):
        with pytest.raises(BadArgument):
            A.parse_cksm(bad)


def test_eret_esto_dcau():
    assert A.parse_eret("P 10 20 /f") == A.PartialRetrieve(10, 20, "/f")
    assert A.parse_esto("A 100 /f") == A.AdjustedStore(100, "/f")
    for bad in ("X 1 2 /f", "P 1 /f", "P 9223372036854775807 9 /f"):
        with pytest.raises(BadArgument):
            A.parse_eret(bad)
    with pytest.raises(BadArgument):
        A.parse_esto("A x /f")
    assert A.parse_dcau("n") == "N"
    with pytest.raises(BadArgument):
        A.parse_dcau("A")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_parsers_raise_only_bad_argument(text):
    for fn in (
        A.parse_type,
        A.parse_mode,
        A.parse_alloc,
        A.parse_retr_opts,
        A.parse_retr_markers,
        A.parse_trev,
        A.parse_cksm,
        A.parse_eret,
        A.parse_esto,
        A.parse_site,
        A.parse_opts,
        A.parse_bufsize,
    ):
        try:
            fn(text)
        except BadArgument:
            pass
    for mode in ("S", "E"):
        try:
            A.parse_rest(text, mode)
        except BadArgument:
            pass


def test_opts_retr_markers():
    assert A.parse_retr_markers("Markers=5;") == 5
    assert A.parse_retr_markers("Parallelism=4,4,4;markers=2;") == 2
    assert A.parse_retr_markers("Parallelism=4,4,4;") is None
    assert A.parse_retr_markers("Markers=0;") == 0
    for bad in ("Markers=;", "Markers=-1;", "Markers=x;", "Markers=100000;"):
        with pytest.raises(BadArgument):
            A.parse_retr_markers(bad)
