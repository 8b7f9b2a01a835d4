"""Warm session processes: the hand-over program against fake pools, and the real server with a pool."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from transfercore_globus_dsi import launch, warm
from transfercore_globus_dsi.testing import (
    Control,
    DsiServer,
    anonymous_args,
    children,
    guc,
    loopback_args,
    started_with,
    wait_for,
)

from transfercore.testing.loopback import free_port, wait_port


@pytest.fixture
def cold_server(tmp_path: Path) -> str:
    """Stands in for globus-gridftp-server: says it ran cold, with its arguments and what its stdin holds."""
    script = tmp_path / "cold-server"
    script.write_text('#!/bin/sh\nprintf "cold %s stdin=%s" "$*" "$(head -c 5)"\n')
    script.chmod(0o755)
    return str(script)


class FakePool:
    """One warm process's side of the hand-over, scripted: 'w', then take the fd, then 'k' or not."""

    def __init__(self, path: str, *, hello: bool = True, confirm: bool = True) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.hello, self.confirm = hello, confirm
        self.received: socket.socket | None = None
        self.conn: socket.socket | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(10)
        conn, _ = self.listener.accept()
        self.conn = conn
        if not self.hello:
            return
        conn.sendall(b"w")
        msg, fds, _, _ = socket.recv_fds(conn, 1, 1)
        if fds:
            self.received = socket.socket(fileno=fds[0])
        if self.confirm:
            conn.sendall(b"k")
        else:
            conn.close()

    def close(self) -> None:
        self.thread.join(10)
        for s in (self.conn, self.received, self.listener):
            if s is not None:
                s.close()


@pytest.fixture
def hand_over(tmp_path: Path, cold_server: str) -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], socket.socket]]]:
    """Run transfercore-dsi-exec with one end of a socket pair as its connection."""
    procs: list[subprocess.Popen[bytes]] = []

    def run(*, wait_ms: int = 200, sock_path: str | None = None) -> tuple[subprocess.Popen[bytes], socket.socket]:
        client, server_end = socket.socketpair()
        env = {
            "PATH": os.environ.get("PATH", ""),
            "TRANSFERCORE_DSI_SERVER": cold_server,
            "TRANSFERCORE_DSI_WARM_SOCKET": sock_path or str(tmp_path / "pool"),
            "TRANSFERCORE_DSI_WARM_WAIT_MS": str(wait_ms),
        }
        proc = subprocess.Popen([warm.exec_path(), "-p", "0", "-inetd"], stdin=server_end.fileno(),
                                stdout=subprocess.PIPE, env=env)
        server_end.close()
        procs.append(proc)
        return proc, client

    yield run
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_with_no_pool_the_connection_is_served_cold_with_the_daemons_arguments(hand_over):
    proc, client = hand_over()
    client.sendall(b"USER\n")
    out, _ = proc.communicate(timeout=10)
    # the real server would have been exec'd with the same arguments and the same stdin
    assert out == b"cold -p 0 -inetd stdin=USER"
    client.close()


@pytest.mark.parametrize("pool_kw", [
    {"hello": False},  # nobody accepts in time
    {"confirm": False},  # it took the descriptor but never said so: the launcher still holds the connection
], ids=["never-accepts", "never-confirms"])
def test_a_hand_over_that_does_not_finish_leaves_the_connection_cold(hand_over, tmp_path, pool_kw):
    pool = FakePool(str(tmp_path / "pool"), **pool_kw)
    proc, client = hand_over(wait_ms=100)
    client.sendall(b"USER\n")
    out, _ = proc.communicate(timeout=10)
    assert out.startswith(b"cold ") and out.endswith(b"stdin=USER")
    pool.close()
    client.close()


def test_a_confirmed_hand_over_gives_the_warm_process_the_connection_and_waits_for_it(hand_over, tmp_path):
    pool = FakePool(str(tmp_path / "pool"))
    proc, client = hand_over()
    wait_for(lambda: pool.received is not None and pool.conn is not None, 10, "the hand-over")
    assert pool.received is not None
    client.sendall(b"hello")
    assert pool.received.recv(5) == b"hello"
    pool.received.sendall(b"220 ")
    assert client.recv(4) == b"220 "
    # the launcher serves nothing itself and lasts as long as the warm process holds its socket
    time.sleep(0.3)
    assert proc.poll() is None
    pool.received.close()
    pool.received = None
    assert pool.conn is not None
    pool.conn.close()
    pool.conn = None
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0 and out == b""
    # the launcher gave its copy away: the client sees the connection end when the warm side's does
    client.settimeout(5)
    assert client.recv(1) == b""
    pool.close()
    client.close()


def test_session_arguments_are_the_daemons_own():
    assert warm.session_argv(["/usr/sbin/globus-gridftp-server", "-s", "-p", "2811", "--daemon", "-dsi", "x"]) == [
        "/usr/sbin/globus-gridftp-server", "-p", "2811", "-dsi", "x", "-inetd"]


@pytest.mark.parametrize("flag", ["-S", "-detach", "-inetd", "-i", "-no-fork"])
def test_a_pool_refuses_a_server_that_would_not_stay_a_daemon(flag):
    plan = launch.Launch(("/usr/sbin/globus-gridftp-server", "-p", "2811", flag), {}, "/tmp/x.log")
    with pytest.raises(warm.WarmPoolError, match=flag):
        warm.WarmPool(plan, 2)


@pytest.mark.parametrize(("args", "env", "says"), [
    (["--warm", "2", "--site-config"], {}, "a gridftp.conf starts no pool"),
    (["--warm", "2"], {"TRANSFERCORE_DSI_WARM_WAIT_MS": "soon"}, "is not a number of milliseconds"),
], ids=["site-config", "bad-wait"])
def test_the_command_line_refuses_what_a_pool_cannot_do(tmp_path, args, env, says):
    proc = subprocess.run([os.sys.executable, "-m", "transfercore", "globus-server", *args, f"posix://{tmp_path}"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, **env})
    assert proc.returncode != 0
    assert says in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir())


def test_the_command_line_refuses_a_bad_count(tmp_path):
    proc = subprocess.run([os.sys.executable, "-m", "transfercore", "globus-server", "--warm", "many",
                           f"posix://{tmp_path}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--warm" in proc.stderr and "'many'" in proc.stderr


def _session_lines(server: DsiServer) -> list[str]:
    return re.findall(r"^.* INFO session for .*$", server.dsi_log(), re.M)


@pytest.mark.globus
def test_sessions_are_served_by_warm_processes_and_files_arrive_whole(dsi_server, root, tmp_path, monkeypatch):
    # a connection waits for a refilling pool rather than starting cold: every session is warm
    monkeypatch.setenv("TRANSFERCORE_DSI_WARM_WAIT_MS", "20000")
    server: DsiServer = dsi_server(f"posix://{root}", warm=2)
    server.wait_warm()
    source = tmp_path / "tree"
    for d in range(3):
        (source / f"d{d}").mkdir(parents=True)
        for i in range(10):
            (source / f"d{d}" / f"f{i}").write_bytes(os.urandom(1000 * i + d))
    guc("-r", "-cc", "4", "-fast", f"file://{source}/", server.ftp("/tree/"))
    for path in source.rglob("f*"):
        assert (root / "tree" / path.relative_to(source)).read_bytes() == path.read_bytes()
    back = tmp_path / "back.bin"
    guc(server.ftp("/tree/d2/f9"), f"file://{back}")
    assert back.read_bytes() == (source / "d2" / "f9").read_bytes()
    lines = _session_lines(server)
    assert len(lines) >= 5  # the tree's four sessions (and a listing's), the download's
    assert all("warm, waited" in line for line in lines), lines


@pytest.mark.globus
def test_a_refilled_pool_serves_one_session_after_another(dsi_server, root, monkeypatch):
    monkeypatch.setenv("TRANSFERCORE_DSI_WARM_WAIT_MS", "20000")
    server: DsiServer = dsi_server(f"posix://{root}", warm=1)
    server.wait_warm()
    pids = set()
    for i in range(3):
        c = Control(server.port)
        try:
            c.login()
            assert c.cmd(f"MKD /d{i}")[0] == 257
        finally:
            c.close()
        wait_for(lambda n=i + 1: len(_session_lines(server)) == n, 10, "the session's line")
        pids.add(_session_lines(server)[-1].split()[1])
    assert all("warm, waited" in line for line in _session_lines(server))
    assert len(pids) == 3  # one process per session, each replaced
    assert sorted(p.name for p in root.iterdir()) == ["d0", "d1", "d2"]


@pytest.mark.globus
def test_warm_processes_leave_with_the_server(dsi_server, root):
    server: DsiServer = dsi_server(f"posix://{root}", warm=3)
    server.wait_warm()
    assert server.proc is not None
    pool = _pool_pids(server)
    assert len(pool) == 3
    server.proc.terminate()
    server.proc.wait(20)
    wait_for(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in pool), 20, "the warm processes to end")


def _pool_pids(server: DsiServer) -> list[int]:
    assert server.proc is not None
    inetd = set(started_with("-inetd"))
    return [pid for pid in children(server.proc.pid) if pid in inetd]


def _policies(pid: int) -> set[int]:
    return {os.sched_getscheduler(int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}


@pytest.mark.globus
def test_processes_warm_up_at_idle_priority_then_wait_and_serve_at_normal(tmp_path, root):
    # refilling the pool must not take a CPU from a session (warm-up at idle priority, as root,
    # which may return to normal), and a waiting process must take its connection at once on a
    # busy machine (normal priority, every thread): a module that imports slowly shows both
    slow = tmp_path / "mods"
    slow.mkdir()
    (slow / "slow_to_import.py").write_text("import time\ntime.sleep(1.5)\n")
    plan = launch.server_launch(f"posix://{root}", ["-p", "0", "-control-interface", "127.0.0.1", "-aa"],
                                log=str(tmp_path / "dsi.log"))
    env = {**plan.env, "PYTHONPATH": os.pathsep.join(filter(None, [str(slow), plan.env.get("PYTHONPATH")]))}
    plan = launch.Launch(plan.argv, env, plan.log, (*plan.imports, "slow_to_import"))
    pool = warm.WarmPool(plan, 1).start()
    try:
        seen: set[int] = set()
        deadline = time.monotonic() + 30
        while pool.idle() < 1 and time.monotonic() < deadline:
            for pid in pool.pids():
                try:
                    seen |= _policies(pid)
                except (FileNotFoundError, ProcessLookupError):
                    pass
            time.sleep(0.05)
        assert pool.idle() == 1
        # (normal before the server loads the DSI, and between its return to normal and the pool's reading)
        assert (os.SCHED_IDLE in seen) == (os.geteuid() == 0)
        (waiting,) = pool.pids()
        assert _policies(waiting) == {os.SCHED_OTHER}
    finally:
        pool.stop()
    assert pool.pids() == []


@pytest.mark.globus
def test_a_reload_replaces_the_waiting_processes(dsi_server, root, monkeypatch):
    # SIGHUP: the server reads its configuration again, and the waiting processes, which read
    # it when they started, are replaced; sessions go on being served warm
    monkeypatch.setenv("TRANSFERCORE_DSI_WARM_WAIT_MS", "20000")
    server: DsiServer = dsi_server(f"posix://{root}", warm=2)
    server.wait_warm()
    before = set(_pool_pids(server))
    assert len(before) == 2
    assert server.proc is not None
    server.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: not (before & set(_pool_pids(server))), 20, "the waiting processes to be replaced")
    wait_for(lambda: len(_pool_pids(server)) == 2, 20, "two new waiting processes")
    c = Control(server.port)
    try:
        c.login()
        assert c.cmd("MKD /after-reload")[0] == 257
    finally:
        c.close()
    wait_for(lambda: _session_lines(server), 10, "the session's line")
    line = _session_lines(server)[-1]
    assert "warm, waited" in line and int(line.split()[1]) not in before
    assert server.proc.poll() is None  # the command and its server go on


@pytest.mark.globus
def test_the_server_and_the_pool_end_when_the_command_is_killed(dsi_server, root):
    # nothing may be left holding the port without a supervisor (a service manager restarts it)
    server: DsiServer = dsi_server(f"posix://{root}", warm=2)
    server.wait_warm()
    assert server.proc is not None
    # a session first: one waiting process took its connection, the other went on waiting
    before = set(_pool_pids(server))
    c = Control(server.port)
    try:
        c.login()
    finally:
        c.close()
    wait_for(lambda: len(_session_lines(server)) == 1, 10, "the session's line")
    taken = int(_session_lines(server)[0].split()[1])
    wait_for(lambda: len(set(_pool_pids(server)) - before) == 1, 20, "the session's replacement")
    everything = children(server.proc.pid)
    assert before - {taken} <= set(everything)  # the one that did not get the connection
    server.proc.kill()
    server.proc.wait(10)
    wait_for(lambda: not any(_running(pid) for pid in everything), 20, "the server and the pool to end")


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's end is reaped by init, in its own time)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.globus
@pytest.mark.parametrize(("env", "expected"), [
    ({"TRANSFERCORE_DSI_PYTHON": "/nonexistent/python"}, "the Python executable /nonexistent/python is missing"),
    ({"PYTHONPATH": "{broken}"}, "cannot load its Python part: RuntimeError: broken on purpose"),
], ids=["no-python", "broken-python-part"])
def test_a_warm_process_whose_python_failed_refuses_its_login_with_the_reason(root, tmp_path, env, expected):
    # what a cold session says, a warm one says too: its start-up failed before the client came
    broken = tmp_path / "broken" / "transfercore_globus_dsi"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise RuntimeError('broken on purpose')\n")
    port = free_port()
    log = tmp_path / "dsi.log"
    plan = launch.server_launch(f"posix://{root}", [*loopback_args(port), *anonymous_args(), "-d", "ERROR",
                                "-l", str(tmp_path / "g.log")], log=str(log))
    # the server's environment only: this process imported the DSI already
    plan = launch.Launch(plan.argv, {**plan.env, **{k: v.replace("{broken}", str(broken.parent))
                                                    for k, v in env.items()}}, plan.log, plan.imports)
    pool = warm.WarmPool(plan, 1, wait_ms=20000).start()
    daemon = subprocess.Popen(list(pool.daemon.argv), env=dict(pool.daemon.env),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, daemon)
        # wait_port's probe was a connection too: taken, and replaced
        wait_for(lambda: pool.served == 1 and pool.idle() == 1, 30, "the probe's process replaced")
        c = Control(port)
        try:
            assert c.cmd("USER anonymous")[0] == 331
            code, text = c.cmd("PASS x@y")
            assert code >= 400, text
        finally:
            c.sock.close()
        wait_for(lambda: pool.served == 2, 10, "the waiting process to take the login")
        wait_for(lambda: log.exists() and expected in log.read_text(), 10, f"{expected!r} in the DSI log")
    finally:
        daemon.terminate()
        daemon.wait(10)
        pool.stop(sessions=True)
