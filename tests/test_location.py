import os

import pytest

from transfercore.errors import LocationError
from transfercore.location import Location, parse_location


def test_plain_paths_mean_posix_and_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_location("data/file.bin") == Location("posix", str(tmp_path / "data/file.bin"))
    assert parse_location("/abs/x") == Location("posix", "/abs/x")


def test_urls_split_into_driver_authority_path_and_options():
    loc = parse_location("mock://store/dir/obj?model=prefix&fail_after=100")
    assert (loc.driver, loc.authority, loc.path) == ("mock", "store", "/dir/obj")
    assert loc.option_map == {"model": "prefix", "fail_after": "100"}
    assert parse_location("posix:///data/a%20b").path == "/data/a b"
    assert parse_location("file:///data/x").driver == "posix"
    assert parse_location("HPSS:///x").driver == "hpss"


def test_location_formats_back_to_an_equivalent_url():
    loc = parse_location("mock://store/d/a b?lie=wide-marker")
    assert parse_location(str(loc)) == loc


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty location"),
        ("posix://", "no path"),
        ("posix:///x#frag", "fragment"),
        ("posix:///x?a=1&a=2", "twice"),
        ("posix:///x?novalue", "malformed options"),
        ("data/x?root=/", "options need a URL"),
        ("posix:///a\x00b", "NUL"),
        ("posix:///a%00b", "NUL"),
    ],
)
def test_bad_locations_are_explained(text, message):
    with pytest.raises(LocationError, match=message):
        parse_location(text)


def test_relative_url_path_is_refused():
    # "posix:relative" has no "//" and is read as a plain local path, never a URL
    assert parse_location("posix:relative").path == os.path.abspath("posix:relative")
