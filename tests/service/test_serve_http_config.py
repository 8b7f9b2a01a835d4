"""``serve-http --config FILE`` and ``--check-config FILE``: the same configuration file as ``serve``."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "transfercore", "serve-http", *args],
                          capture_output=True, text=True, timeout=60)


def test_check_config_good_and_bad(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    good = tmp_path / "http.toml"
    good.write_text(f'root = "{root}"\nmax_size = "10G"\nmax_uploads = 8\nstate_dir = "{tmp_path / "state"}"\n'
                    'token = ["alice:0123456789abcdef0123"]\n')
    proc = cli("--check-config", str(good))
    assert proc.returncode == 0 and proc.stdout.strip() == f"{good}: ok", proc.stderr
    for body, line, words in [
        (f'root = "{root}"\nmax_uploads = 0\n', 2, "key 'max_uploads': 0 must be more than 0"),
        (f'root = "{root}"\nmax_sise = "1G"\n', 2, "key 'max_sise': unknown setting (did you mean 'max_size'?)"),
        (f'root = "{root}"\ntoken = "alice:0123456789abcdef0123"\n', 2, "key 'token'"),
        (f'root = "{root / "none"}"\n', 1, "key 'root': "),
        (f'root = "{root}"\ntoken = ["alice:short"]\n', None, "OWNER:TOKEN"),
    ]:
        bad = tmp_path / "bad.toml"
        bad.write_text(body)
        proc = cli("--check-config", str(bad))
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert (f"{bad}:{line}: " if line else f"{bad}: ") in proc.stderr and words in proc.stderr, proc.stderr


@pytest.fixture
def served(tmp_path: Path):
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> int:
        port_file = tmp_path / f"port{len(procs)}"
        proc = subprocess.Popen([sys.executable, "-m", "transfercore", "serve-http", "--port", "0",
                                 "--port-file", str(port_file), *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        deadline = time.monotonic() + 30
        while not port_file.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "serve-http did not start"
            time.sleep(0.05)
        return int(port_file.read_text())

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def test_serve_http_takes_its_settings_from_the_file_and_flags_win(served, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    cfg = tmp_path / "http.toml"
    cfg.write_text(f'root = "{root}"\nmax_size = "5M"\nport = 1\nstate_dir = "{tmp_path / "state"}"\n')
    port = served("--config", str(cfg))  # --port 0 from the command line wins over port = 1
    req = urllib.request.Request(f"http://127.0.0.1:{port}/files/", method="OPTIONS")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Tus-Max-Size"] == str(5 << 20)
    port = served("--config", str(cfg), "--max-size", "7M")
    with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/files/", method="OPTIONS"),
                                timeout=10) as resp:
        assert resp.headers["Tus-Max-Size"] == str(7 << 20)
