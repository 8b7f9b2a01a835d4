"""Every malformed URL, unknown driver or bad option is a usage error: exit 2, one line, no traceback."""

import os

import pytest

from transfercore.cli import main
from transfercore.cli.exitcodes import ExitCode

BAD_URLS = [
    ("posix://[::1/x", "is not a valid URL"),
    ("posix://host:99999/x", "is not a valid URL"),
    ("nosuch:///x", "no transfercore driver named 'nosuch'"),
    ("posix:///x?bogus=1", "has no option 'bogus'"),
    ("posix:///x?max_writers=many", "max_writers"),
    ("posix:///x#frag", "fragment"),
]


@pytest.fixture(autouse=True)
def _state(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.mark.parametrize(("url", "message"), BAD_URLS)
@pytest.mark.parametrize("command", ["copy-src", "copy-dst", "checksum", "serve", "conformance"])
def test_bad_url_exits_2_with_one_line(command, url, message, tmp_path, capsys):
    src = tmp_path / "src"
    src.write_bytes(b"x" * 100)
    argv = {
        "copy-src": ["copy", url, str(tmp_path / "dst")],
        "copy-dst": ["copy", str(src), url],
        "checksum": ["checksum", url],
        "serve": ["serve", "--driver", url, "--anonymous", "--port", "0"],
        "conformance": ["conformance", url],
    }[command]
    cpus = os.sched_getaffinity(0)
    assert main(argv) == ExitCode.USAGE
    # run in this thread, the command leaves its CPUs as they were (serve keeps one core while it runs)
    assert os.sched_getaffinity(0) == cpus
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("transfercore: error: ") and message in lines[0]
    assert "Traceback" not in captured.err
    assert not (tmp_path / "dst").exists()
