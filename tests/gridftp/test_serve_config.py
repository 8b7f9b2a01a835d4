"""``serve --config FILE`` and ``serve --check-config FILE``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from transfercore.cli import build_parser
from transfercore.service.config import options

from .conftest import Client


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "transfercore", "serve", *args],
                          capture_output=True, text=True, timeout=60)


def write(tmp_path: Path, text: str, name: str = "serve.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_flag_is_a_key_under_its_own_name():
    args = build_parser().parse_args(["serve"])
    table = options(args)
    for key in ("anonymous_write", "max_unauthenticated_per_address", "host_cert", "passive_ports",
                "transfer_log", "session_log", "metrics_port", "verbose", "spool_dir", "max_spool"):
        assert key in table, key
    assert table["anonymous_write"].flag == "--anonymous-write"
    assert table["port"].kind is int and table["marker_interval"].kind is float
    assert table["verbose"].kind is bool and table["root"].kind is str
    assert "add_user" not in table and "config" not in table


def test_check_config_accepts_a_good_file(tmp_path, root):
    cfg = write(tmp_path, f'''
# a site's serve.toml
root = "{root}"
host = "127.0.0.1"
port = 2811
anonymous_write = true
marker_interval = 2
max_spool = "1G"
passive_ports = "50000-50100"
transfer_log = "{tmp_path / 'transfers.log'}"
''')
    proc = run_cli("--check-config", str(cfg))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{cfg}: ok"


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ('root = "/"\nanonymous = true\nidle_timout = 21\n', 3, ["key 'idle_timout'", "unknown setting", "did you mean 'idle_timeout'"]),
        ('root = "/"\nanonymous-write = true\n', 2, ["key 'anonymous-write'", "did you mean 'anonymous_write'"]),
        ('root = "/"\nanonymous = true\n\nport = "2811"\n', 4, ["key 'port'", "is not a whole number"]),
        ('root = "/"\nanonymous = "yes"\n', 2, ["key 'anonymous'", "is not true or false"]),
        ('root = "/"\nanonymous = true\nport = 70000\n', 3, ["key 'port'", "not a TCP port"]),
        ('root = "/"\nanonymous = true\npassive_ports = "9-1"\n', 3, ["key 'passive_ports'", "50000-50100"]),
        ('root = "/"\nanonymous = true\nmarker_interval = 0.01\n', 3, ["key 'marker_interval'", "at least 0.1"]),
        ('root = "/"\nanonymous = true\nmax_spool = "lots"\n', 3, ["key 'max_spool'"]),
        ('root = "/"\nanonymous = true\ntransfer_log_checksum = "crc99"\n', 3, ["key 'transfer_log_checksum'"]),
        ('root = "/"\nanonymous = true\nport = \n', 3, ["not valid TOML"]),
        ('root = "/"\n[limits]\nmax_sessions = 3\n', 2, ["key 'limits'", "is a table"]),
    ],
)
def test_check_config_names_the_bad_key_and_line(tmp_path, body, line, words):
    cfg = write(tmp_path, body)
    proc = run_cli("--check-config", str(cfg))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"{cfg}:{line}: " in proc.stderr, proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr


def test_check_config_runs_the_checks_serve_runs(tmp_path, root):
    # every value is well formed, but nobody could log in: serve would refuse to start
    cfg = write(tmp_path, f'root = "{root}"\n')
    proc = run_cli("--check-config", str(cfg))
    assert proc.returncode == 2 and "nobody could log in" in proc.stderr, proc.stderr
    cfg = write(tmp_path, f'root = "{root / "missing"}"\nanonymous = true\n')
    proc = run_cli("--check-config", str(cfg))
    assert proc.returncode == 2 and "key 'root'" in proc.stderr and "not a directory" in proc.stderr
    proc = run_cli("--check-config", str(tmp_path / "absent.toml"))
    assert proc.returncode == 2 and "cannot read the configuration file" in proc.stderr


def test_serve_with_a_config_file_and_a_flag_overriding_it(serve, root, tmp_path):
    (root / "hello.txt").write_text("hi")
    # the file says read-only anonymous access on a port that is taken; the command line moves the port
    cfg = write(tmp_path, f'root = "{root}"\nanonymous = true\nport = 1\nidle_timeout = 30\n')
    srv = serve("--config", str(cfg))  # the fixture adds --port N, which wins over port = 1
    c = Client(srv.port)
    c.login()
    assert c.cmd("SIZE /hello.txt") == (213, "213 2")
    assert c.cmd("MKD /nope")[0] == 550  # read-only: the file's anonymous = true, not anonymous_write
    c.close()
    srv2 = serve("--config", str(cfg), "--anonymous-write")
    c = Client(srv2.port)
    c.login()
    assert c.cmd("MKD /made")[0] == 257
    assert (root / "made").is_dir()
    c.close()


def test_serve_refuses_a_bad_config_file_at_start(tmp_path, root):
    cfg = write(tmp_path, f'root = "{root}"\nanonymous = true\nmax_sesions = 3\n')
    proc = run_cli("--config", str(cfg), "--port", "0")
    assert proc.returncode == 2
    assert f"{cfg}:3: key 'max_sesions': unknown setting (did you mean 'max_sessions'?)" in proc.stderr
