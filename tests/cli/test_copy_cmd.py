"""``transfercore copy`` in process: options, output modes, exit codes, messages."""

import json
import os
import random

import pytest
from transfercore_mock import reset_stores  # noqa: E402

from transfercore.cli import main
from transfercore.cli.exitcodes import ExitCode
from transfercore.registry import open_location  # noqa: E402


@pytest.fixture(autouse=True)
def _state(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    reset_stores()
    yield
    reset_stores()


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "src.bin"
    path.write_bytes(random.Random(3).randbytes(1_000_000))
    return path


def events(out):
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_json_prints_one_event_per_line(src, tmp_path, capsys):
    dst = tmp_path / "dst.bin"
    code = main(["copy", str(src), str(dst), "--json", "--block-size", "64K", "--marker-bytes", "256K"])
    assert code == ExitCode.OK
    evs = events(capsys.readouterr().out)
    kinds = [e["event"] for e in evs]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert "progress" in kinds and "marker" in kinds
    marker = [e for e in evs if e["event"] == "marker"][-1]
    assert marker["ranges"] == "0-1000000" and marker["final"]
    # every line carries the schema version, a timestamp and the transfer id
    assert {e["schema"] for e in evs} == {1} and {e["transfer_id"] for e in evs} == {1}
    times = [e["time"] for e in evs]
    assert times == sorted(times) and abs(times[-1] - __import__("time").time()) < 60
    assert dst.read_bytes() == src.read_bytes()
    assert (tmp_path / "state" / "transfercore" / "journal.sqlite").exists()


def test_plain_lines_when_not_a_terminal(src, tmp_path, capsys):
    code = main(["copy", str(src), str(tmp_path / "d"), "--checksum", "MD5"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("copying posix://")
    assert "verifying MD5" in out and "done: " in out


def test_quiet_prints_nothing(src, tmp_path, capsys):
    assert main(["copy", str(src), str(tmp_path / "d"), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_explicit_journal_path(src, tmp_path, capsys):
    journal = tmp_path / "elsewhere" / "j.sqlite"
    journal.parent.mkdir()
    assert main(["copy", str(src), str(tmp_path / "d"), "--quiet", "--journal", str(journal)]) == 0
    assert journal.exists()
    assert not (tmp_path / "state" / "transfercore" / "journal.sqlite").exists()
    main(["status", "--json", "--journal", str(journal)])
    (entry,) = json.loads(capsys.readouterr().out)["files"]
    assert entry["state"] == "done" and entry["durable_bytes"] == 1_000_000


def test_resume_after_failure_and_the_status_listing(src, capsys):
    code = main(["copy", str(src), "mock://s/o?fail_after=500000", "--json", "--block-size", "64K"])
    captured = capsys.readouterr()
    assert code == ExitCode.FAILED
    assert "injected fault" in captured.err
    error = [e for e in events(captured.out) if e["event"] == "error"][0]
    assert error["resumable"] and error["durable_bytes"] > 0

    assert main(["status"]) == 0
    listing = capsys.readouterr().out
    assert "failed" in listing and "durable" in listing and "mock://s/o" in listing

    assert main(["copy", str(src), "mock://s/o", "--json", "--block-size", "64K"]) == 0
    evs = events(capsys.readouterr().out)
    resumed = [e for e in evs if e["event"] == "resumed"][0]
    done = evs[-1]
    assert resumed["bytes"] == error["durable_bytes"]
    assert done["bytes_sent"] == 1_000_000 - resumed["bytes"]
    with open_location("mock://s/o").driver.open_read("/o") as reader:
        assert reader.read(0, reader.size) == src.read_bytes()


def test_no_resume_says_why(src, capsys):
    main(["copy", str(src), "mock://s/o?fail_after=500000", "--quiet", "--block-size", "64K"])
    capsys.readouterr()
    assert main(["copy", str(src), "mock://s/o", "--no-resume"]) == 0
    out = capsys.readouterr().out
    assert "starting from zero: resume was turned off (--no-resume)" in out


def test_source_changed_says_why_in_one_line(src, capsys):
    main(["copy", str(src), "mock://s/o?fail_after=500000", "--quiet", "--block-size", "64K"])
    with open(src, "ab") as f:
        f.write(b"x")
    assert main(["copy", str(src), "mock://s/o"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("starting from zero")]
    assert lines == ["starting from zero: the source changed since the previous run "
                     "(size 1000000 -> 1000001, modification time changed, content changed)"]


def test_checksum_mismatch_exits_3_and_keeps_state(src, capsys):
    lie = "mock://s/o?lie=early-marker&corrupt=true"
    assert main(["copy", str(src), lie + "&fail_after=600000", "--quiet", "--block-size", "64K"]) == 1
    open_location("mock://s/o").driver.simulate_crash()
    capsys.readouterr()
    assert main(["copy", str(src), lie, "--quiet", "--block-size", "64K"]) == ExitCode.CHECKSUM_MISMATCH
    err = capsys.readouterr().err
    assert "CRC32C checksum mismatch" in err and "sends the object in full" in err
    main(["status", "--json"])
    (entry,) = json.loads(capsys.readouterr().out)["files"]
    assert entry["state"] == "mismatch"


@pytest.mark.parametrize(
    "argv,code,message",
    [
        (["--streams", "abc"], ExitCode.USAGE, "--streams 'abc' is not a whole number"),
        (["--streams", "0"], ExitCode.USAGE, "streams 0 must be a whole number from 1"),
        (["--block-size", "4Q"], ExitCode.USAGE, "--block-size '4Q' is not a size"),
        (["--block-size", "0"], ExitCode.USAGE, "smaller than the minimum"),
        (["--marker-bytes", "lots"], ExitCode.USAGE, "--marker-bytes 'lots' is not a size"),
        (["--marker-interval", "soon"], ExitCode.USAGE, "--marker-interval 'soon' is not a number"),
        (["--marker-interval", "-1"], ExitCode.USAGE, "marker interval -1.0 must be"),
        (["--checksum", "crc64"], ExitCode.USAGE, "unknown checksum algorithm 'crc64'"),
    ],
)
def test_invalid_options(src, tmp_path, capsys, argv, code, message):
    assert main(["copy", str(src), str(tmp_path / "d"), *argv]) == code
    err = capsys.readouterr().err
    assert err.startswith("transfercore: error: ") and message in err
    assert not (tmp_path / "d").exists()


def test_unknown_driver(src, capsys):
    assert main(["copy", str(src), "nosuch://x/y"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "no transfercore driver named 'nosuch'" in err and "installed:" in err


def test_missing_source(tmp_path, capsys):
    assert main(["copy", str(tmp_path / "missing"), str(tmp_path / "d")]) == ExitCode.FAILED
    err = capsys.readouterr().err
    assert "does not exist" in err and "check the source path" in err


def test_destination_directory_missing(src, tmp_path, capsys):
    assert main(["copy", str(src), str(tmp_path / "nodir" / "d")]) == ExitCode.FAILED
    err = capsys.readouterr().err
    assert "does not exist" in err and "directory" in err


def test_same_source_and_destination(src, capsys):
    assert main(["copy", str(src), f"file://{src}"]) == ExitCode.USAGE
    assert "same object" in capsys.readouterr().err
    assert os.path.getsize(src) == 1_000_000
