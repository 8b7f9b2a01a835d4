import subprocess
import sys

import pytest

from .conftest import Client


def run_cli(*args, input=None):
    return subprocess.run(
        [sys.executable, "-m", "transfercore", "serve", *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=60,
    )


def test_add_user_then_login(serve, root, tmp_path):
    users = tmp_path / "users"
    proc = run_cli("--add-user", "alice", "--users", str(users), input="pw-alice\n")
    assert proc.returncode == 0, proc.stderr
    assert "pw-alice" not in users.read_text()
    srv = serve("--root", str(root), "--users", str(users))
    c = Client(srv.port)
    assert c.cmd("USER anonymous")[0] == 331
    assert c.cmd("PASS x")[0] == 530  # anonymous is off by default
    c.cmd("USER alice")
    assert c.cmd("PASS wrong")[0] == 530
    c.login("alice", "pw-alice")
    assert c.cmd("MKD /made")[0] == 257
    assert (root / "made").is_dir()


def test_option_errors():
    proc = run_cli("--anonymous")
    assert proc.returncode != 0 and "--root" in proc.stderr
    proc = run_cli("--root", "/", "--passive-ports", "9-1", "--anonymous")
    assert proc.returncode != 0 and "passive-ports" in proc.stderr
    proc = run_cli("--root", "/")
    assert proc.returncode != 0 and "nobody could log in" in proc.stderr


def test_passive_port_range(serve, root):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1]
    lo = max(20000, min(base, 60000))
    srv = serve("--root", str(root), "--anonymous", "--passive-ports", f"{lo}-{lo + 20}")
    c = Client(srv.port)
    c.login()
    _, port = c.pasv()
    assert lo <= port <= lo + 20


def test_invalid_port_is_one_line_and_a_usage_exit_code(root):
    for port in ("70000", "-1"):
        proc = run_cli("--root", str(root), "--anonymous", "--port", port)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "is not a TCP port" in proc.stderr
        assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_busy_port_is_one_line_and_a_failure_exit_code(root, workers):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = run_cli("--root", str(root), "--anonymous", "--port", str(port), "--workers", workers)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "in use" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(("asked", "runs"), [([], "uvloop"), (["--event-loop", "asyncio"], "asyncio")])
def test_sessions_run_on_the_event_loop_asked_for(serve, root, asked, runs):
    srv = serve("--root", str(root), "--anonymous-write", "-v", *asked)
    c = Client(srv.port)
    c.login()
    assert c.cmd("MKD /made")[0] == 257
    assert f"sessions run on the {runs} event loop" in srv.log.read_text()


def test_an_unknown_event_loop_is_refused(root):
    proc = run_cli("--root", str(root), "--anonymous", "--event-loop", "trio")
    assert proc.returncode == 2 and "--event-loop" in proc.stderr
