from __future__ import annotations

import pytest
from transfercore_globus_dsi.config import parse_config

from transfercore.errors import LocationError, OptionError


def test_url_and_options():
    c = parse_config("posix:///data?block=1M log=/var/log/x.log markers=off durable_interval=0.5 spool=/s")
    assert c.location.driver == "posix" and c.location.path == "/data"
    assert (c.log, c.markers, c.durable_interval, c.spool) == ("/var/log/x.log", "off", 0.5, "/s")
    assert c.max_spool is None
    assert parse_config("posix:///d max_spool=2GiB").max_spool == 2 << 30


def test_entry_point():
    c = parse_config("posix:///d entry_point=posix=transfercore_posix.driver:PosixDriver")
    assert c.entry_point == "transfercore_posix.driver:PosixDriver"
    assert parse_config("posix:///d").entry_point is None


def test_defaults_follow_the_client_marker_interval():
    c = parse_config("  hpss:///home/p  ")
    assert c.markers == "durable" and c.durable_interval is None
    assert c.durable_period(5.0) == 2.5
    assert c.durable_period(0.0) == 0.05
    assert parse_config("posix:///d durable_interval=3").durable_period(1) == 3


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "needs a driver URL"),
        (None, "needs a driver URL"),
        ("log=/x posix:///d", "must be the driver URL"),
        ("posix:///d colour=blue", "unknown DSI option 'colour'"),
        ("posix:///d markers", "not name=value"),
        ("posix:///d markers=sometimes", "markers='sometimes'"),
        ("posix:///d durable_interval=nan", "durable_interval"),
        ("posix:///d durable_interval=0", "durable_interval"),
        ("posix:///d log=a log=b", "given twice"),
        ("posix:///d max_spool=lots", "max_spool='lots'"),
        ("posix:///d max_spool=0", "max_spool='0'"),
        ("posix:///d entry_point=transfercore_posix.driver:PosixDriver", "NAME=module:attr"),
        ("posix:///d entry_point=posix=transfercore_posix.driver", "NAME=module:attr"),
        ("posix:///d entry_point=posix=a.b:C;os", "NAME=module:attr"),
        ("posix:///d entry_point=hpss=transfercore_hpss.driver:HpssDriver", "the URL names 'posix'"),
    ],
)
def test_bad_options_say_what_is_wrong(text, message):
    with pytest.raises(OptionError, match=message):
        parse_config(text)


def test_bad_url():
    with pytest.raises(LocationError, match="DSI driver URL"):
        parse_config("posix://")
