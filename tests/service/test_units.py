"""The service modules on their own: transfer log lines, settings merge, the reloader, the histogram."""

from __future__ import annotations

import argparse
import logging

import pytest

from transfercore.errors import OptionError
from transfercore.service.config import given, merge, options, overridable
from transfercore.service.reload import Reloader
from transfercore.service.stats import Histogram, ServiceStats, reason
from transfercore.service.translog import TransferRecord, parse_line, stamp, word


def test_a_transfer_record_is_one_line_of_single_word_fields():
    rec = TransferRecord(start=1767225600.25, end=1767225601.5, user="jane doe", file="/a b/100%\tx",
                         type="STOR", code=226, nbytes=10, remote="192.0.2.7", streams=4, buffer=1 << 20,
                         durable=10, checksum="adler32:0a0b0c0d", host="dtn1")
    line = rec.line()
    assert "\n" not in line
    assert line.startswith("DATE=20260101000001.500000 HOST=dtn1 PROG=transfercore NL.EVNT=FTP_INFO "
                           "START=20260101000000.250000 USER=jane%20doe FILE=/a%20b/100%25%09x ")
    fields = parse_line(line)
    assert fields["DEST"] == "[192.0.2.7]" and fields["STREAMS"] == "4" and fields["BUFFER"] == "1048576"
    assert fields["DURABLE"] == "10" and fields["CHECKSUM"] == "adler32:0a0b0c0d" and fields["CODE"] == "226"
    unknown = TransferRecord(start=0, end=0, user="u", file="/f", type="STOR", code=0, nbytes=0, remote="::1")
    assert parse_line(unknown.line())["DURABLE"] == "-" and parse_line(unknown.line())["CHECKSUM"] == "-"
    assert stamp(0) == "19700101000000.000000" and word("") == "-" and word("é") == "é"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=2811)
    p.add_argument("--anonymous-write", action="store_true")
    p.add_argument("--root")
    overridable(p)
    return p


def test_the_command_line_wins_over_the_file_which_wins_over_the_defaults():
    args = parser().parse_args(["--port", "2811"])
    assert set(options(args)) == {"port", "anonymous_write", "root"}
    assert given(args) == {"port": 2811}  # given explicitly, even though it is the default
    merged = merge(args, given(args), {"port": 9, "root": "/srv", "anonymous_write": True})
    assert (merged.port, merged.root, merged.anonymous_write) == (2811, "/srv", True)
    merged = merge(parser().parse_args([]), {}, {})
    assert (merged.port, merged.root, merged.anonymous_write) == (2811, None, False)


class Built:
    def __init__(self, **kw: object) -> None:
        self.args = argparse.Namespace(**kw)


def test_the_reloader_applies_good_settings_and_keeps_the_old_on_any_failure(caplog):
    applied: list[Built] = []
    counted: list[str] = []
    results = iter([OptionError("bad key"), Built(port=1, users="b"), Built(port=2, users="c")])

    def build() -> Built:
        r = next(results)
        if isinstance(r, Exception):
            raise r
        return r

    first = Built(port=1, users="a")
    reloader = Reloader(build, applied.append, current=first, restart_only=("port",), counted=counted.append)
    with caplog.at_level(logging.INFO, logger="transfercore.service"):
        assert reloader.reload() is False
        assert reloader.current is first and applied == [] and "bad key" in caplog.text
        assert reloader.reload() is True and applied[-1].args.users == "b"
        assert reloader.reload() is True
    # the port is restart-only: the running value stays, and the log says so
    assert applied[-1].args.port == 1 and "port change only at a restart" in caplog.text
    assert counted == ["refused", "ok", "ok"]


def test_the_latency_histogram_is_cumulative():
    h = Histogram((0.01, 0.1, 1.0))
    for v in (0.005, 0.05, 0.05, 5.0):
        h.observe(v)
    assert h.cumulative() == [("0.01", 1), ("0.1", 3), ("1.0", 3), ("+Inf", 4)]
    assert h.sum == pytest.approx(5.105)
    stats = ServiceStats()
    stats.outcome("STOR", 226)
    stats.outcome("STOR", 451)
    assert stats.outcomes == {("STOR", "complete"): 1, ("STOR", "local_error"): 1}
    assert reason(0) == "connection_closed" and reason(999) == "other"


def test_a_transfer_ending_during_a_scrape_is_counted_once():
    # the scrape takes its snapshot, then the transfer ends and is counted: the export must use the
    # snapshot alone, or the upload's bytes appear both in progress and counted (twice its size)
    from transfercore.service.metrics import families
    from transfercore.service.stats import Live

    stats = ServiceStats()

    def live() -> Live:
        snapshot = Live(received=stats.bytes_received + 1000, sent=stats.bytes_sent)
        stats.add("bytes_received", 1000)
        return snapshot

    exported = {f.name: f for f in families(stats, live)}
    assert exported["transfercore_bytes_received"].samples[0].value == 1000
    without_live = {f.name: f for f in families(stats, None)}
    assert without_live["transfercore_bytes_received"].samples[0].value == 1000


def test_figures_of_several_processes_add_up() -> None:
    from transfercore.service.stats import Live, merged

    one, two = ServiceStats(), ServiceStats()
    one.outcome("STOR", 226)
    two.outcome("STOR", 226)
    two.outcome("RETR", 451)
    one.durable_call(0.002)
    two.durable_call(3.0)
    one.add("sessions_total", 2)
    two.marker("restart")
    total, live = merged([
        one.snapshot(Live(received=10, sent=1, sessions={"idle": 1}, spool_bytes=5)),
        two.snapshot(Live(received=20, sent=2, sessions={"idle": 2, "transferring": 1})),
    ])
    assert total.outcomes == {("STOR", "complete"): 2, ("RETR", "local_error"): 1}
    assert total.durable_latency.count == 2 and total.durable_latency.sum == 3.002
    assert total.sessions_total == 2 and total.markers == {"restart": 1}
    assert live == Live(received=30, sent=3, sessions={"idle": 3, "transferring": 1}, spool_bytes=5)
