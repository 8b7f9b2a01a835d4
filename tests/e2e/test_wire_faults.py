"""Faults on the wire between the real globus-url-copy and the two servers of the project:
``transfercore serve`` and the real globus-gridftp-server with the transfercore DSI.

Every connection goes through :class:`~transfercore.testing.faultproxy.FtpFaultProxy`
(the control connection, and each data connection through a proxy of its own,
by rewriting the server's passive replies), which cuts, resets, stalls, slows
or refuses it.  Whatever happens: the client sees a clear error or resumes,
nothing differing from the source is published under the final name, and the
server keeps serving other clients meanwhile and afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from transfercore.testing.faultproxy import Fault, FtpFaultProxy, Kind
from transfercore.testing.loopback import start_globus_server, wait_port_file

pytestmark = pytest.mark.globus

SIZE = 6 * 1024 * 1024 + 12345


@pytest.fixture(autouse=True)
def _globus_tools() -> None:
    if not (shutil.which("globus-url-copy") and shutil.which("globus-gridftp-server")):
        pytest.fail("these tests run the real Globus tools: apt-get install globus-gass-copy-progs "
                    "globus-gridftp-server-progs")


class Server:
    """A running ``transfercore serve`` on 127.0.0.1."""

    def __init__(self, root: Path, log: Path) -> None:
        self.root = root
        self.log = log
        port_file = log.with_name(f"{log.name}.port")
        port_file.unlink(missing_ok=True)
        # --port 0: the server picks its port, which no other process can take before it listens
        cmd = [sys.executable, "-m", "transfercore", "serve", "--root", str(root), "--anonymous-write",
               "--port", "0", "--port-file", str(port_file), "--marker-interval", "0.2", "--data-timeout", "5",
               "-v"]
        env = os.environ | {"XDG_STATE_HOME": str(log.parent / "state")}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(log, "ab"), env=env)
        self.port = wait_port_file(port_file, self.proc)

    def url(self, path: str, port: int | None = None) -> str:
        return f"ftp://127.0.0.1:{port or self.port}{path}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait()


class Dsi(Server):
    """The real globus-gridftp-server with the transfercore DSI over the posix driver."""

    def __init__(self, root: Path, log: Path) -> None:
        from transfercore_globus_dsi.testing import DsiServer

        self.root = root
        self.log = log
        work = log.parent / "dsi"
        work.mkdir()
        self.dsi = DsiServer(f"posix://{root}", work).start()
        self.port = self.dsi.port

    def stop(self) -> None:
        self.dsi.stop()


def _start(kind: str, tmp_path: Path) -> Server:
    root = tmp_path / "root"
    root.mkdir()
    return (Server if kind == "serve" else Dsi)(root, tmp_path / f"{kind}.log")


@pytest.fixture(params=["serve", "dsi"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    s = _start(request.param, tmp_path)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def serve_only(tmp_path: Path) -> Iterator[Server]:
    s = _start("serve", tmp_path)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def proxied() -> Iterator[Callable[..., FtpFaultProxy]]:
    made: list[FtpFaultProxy] = []

    def make(server: Server, control: list[Fault] | None = None, data: list[Fault] | None = None) -> FtpFaultProxy:
        made.append(FtpFaultProxy(("127.0.0.1", server.port), control or [], data_faults=data or [],
                                  stall_limit=30).start())
        return made[-1]

    yield make
    for p in made:
        p.stop()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    p = tmp_path / "src.bin"
    p.write_bytes(os.urandom(SIZE))
    return p


def guc(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["globus-url-copy", *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def published(root: Path) -> dict[str, int]:
    """Visible names under the served root (the driver's hidden partials left out) and sizes."""
    return {p.name: p.stat().st_size for p in root.iterdir() if not p.name.startswith(".")}


def assert_still_serving(server: Server, src: Path, tmp_path: Path, name: str) -> None:
    """Another client, not through the proxy, puts and gets a file whole."""
    proc = guc(f"file://{src}", server.url(f"/{name}"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    back = tmp_path / f"{name}.back"
    proc = guc(server.url(f"/{name}"), f"file://{back}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert back.read_bytes() == src.read_bytes()


@pytest.mark.parametrize("kind", [Kind.CUT, Kind.RESET])
@pytest.mark.parametrize("mode", [[], ["-fast", "-p", "2"]], ids=["stream", "mode-e"])
def test_a_put_whose_data_connection_breaks_fails_clearly_publishes_nothing_and_reruns(
        server, proxied, src, tmp_path, kind, mode):
    proxy = proxied(server, data=[Fault(kind, after=1_000_000, direction="up")])
    proc = guc("-vb", *mode, f"file://{src}", server.url("/put.bin", proxy.port))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    # the client says so in its own words: an error line, or (a cut landing inside one of its
    # calls) its control library's own failed assertion
    assert "error" in out.lower() or "assertion" in out.lower(), out
    assert proxy.data_connections[0].fired
    assert "put.bin" not in published(server.root)
    # the same command again (this time the data connection holds) publishes the source whole
    proc = guc("-vb", *mode, f"file://{src}", server.url("/put.bin", proxy.port))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (server.root / "put.bin").read_bytes() == src.read_bytes()
    assert_still_serving(server, src, tmp_path, "other.bin")


def test_a_control_connection_reset_in_the_middle_of_a_put_publishes_nothing(server, proxied, src, tmp_path):
    # the data connection is slowed so that the reset lands while bytes still move
    proxy = proxied(server, data=[Fault.slow(1_000_000, direction="up")])
    cli = subprocess.Popen(["globus-url-copy", "-vb", f"file://{src}", server.url("/ctl.bin", proxy.port)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    try:
        assert proxy.wait_for(lambda _c: bool(proxy.data_connections) and proxy.data_connections[0].up >= 500_000,
                              timeout=30)
        assert proxy.trip(0, Kind.RESET)
        out, _ = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode != 0, out
    assert proxy.data_connections[0].up < SIZE
    # the server notices (the data stops), keeps the durable part hidden and publishes nothing
    assert "ctl.bin" not in published(server.root)
    assert_still_serving(server, src, tmp_path, "after-reset.bin")
    assert "ctl.bin" not in published(server.root)


def test_a_stalled_get_is_given_up_by_the_client_while_others_are_served(server, proxied, src, tmp_path):
    shutil.copy(src, server.root / "get.bin")
    proxy = proxied(server, data=[Fault.stall(1_000_000, direction="down")])
    target = tmp_path / "got.bin"
    started = time.monotonic()
    cli = subprocess.Popen(["globus-url-copy", "-vb", "-st", "3", server.url("/get.bin", proxy.port),
                            f"file://{target}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           stdin=subprocess.DEVNULL)
    try:
        assert proxy.wait_for(lambda _c: bool(proxy.data_connections) and proxy.data_connections[0].fired,
                              timeout=30)
        # while that transfer hangs, another client is served in full
        assert_still_serving(server, src, tmp_path, "during-stall.bin")
        out, _ = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode != 0, out
    assert "stall" in out.lower() or "timeout" in out.lower() or "timed out" in out.lower(), out
    assert time.monotonic() - started < 45
    # the file on the server is untouched
    assert (server.root / "get.bin").read_bytes() == src.read_bytes()


def test_a_slow_data_connection_still_delivers_the_file_whole(server, proxied, tmp_path):
    data = os.urandom(600_000)
    (tmp_path / "small.bin").write_bytes(data)
    proxy = proxied(server, data=[Fault.slow(1_000_000, direction="up"), Fault.slow(1_000_000, direction="down")])
    proc = guc("-vb", f"file://{tmp_path / 'small.bin'}", server.url("/slow.bin", proxy.port))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (server.root / "slow.bin").read_bytes() == data
    back = tmp_path / "slow.back"
    proc = guc(server.url("/slow.bin", proxy.port), f"file://{back}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert back.read_bytes() == data
    assert [c.fault.kind for c in proxy.data_connections] == [Kind.SLOW, Kind.SLOW]


def test_a_refused_data_connection_is_a_clear_error_and_nothing_is_published(server, proxied, src, tmp_path):
    proxy = proxied(server, data=[Fault.refuse()])
    # Without a stall timeout the client waits on the Globus server for minutes (a refused
    # data connection in stream mode leaves both ends waiting, with Globus's own storage too).
    proc = guc("-vb", "-st", "5", f"file://{src}", server.url("/refused.bin", proxy.port))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "refused.bin" not in published(server.root)
    assert proxy.data_connections[0].ended == "refused"
    assert_still_serving(server, src, tmp_path, "after-refusal.bin")


def test_a_third_party_copy_whose_data_connection_is_reset_resumes_with_rest(serve_only, proxied, tmp_path):
    """The real Globus server as source, ours as destination through the proxy: once our
    first restart marker reached the client, a data connection is reset, and
    ``globus-url-copy -rst`` restarts from the marker with ``REST``."""
    source_dir = Path(tempfile.mkdtemp(prefix="tc-wire-src-"))
    try:
        source_dir.chmod(0o755)  # the real server reads as 'nobody'
        payload = os.urandom(16 * 1024 * 1024)
        (source_dir / "r.bin").write_bytes(payload)
        (source_dir / "r.bin").chmod(0o644)
        pidfile = tmp_path / "gsrv.pid"
        port = start_globus_server(0, pidfile, tmp_path / "gsrv.log")
        # slow enough (2 x 3 MB/s) that markers arrive while the first attempt runs
        server = serve_only
        proxy = proxied(server, data=[Fault.slow(3_000_000, direction="up")] * 2)
        cli = subprocess.Popen(
            ["globus-url-copy", "-dbg", "-vb", "-fast", "-p", "2", "-rst", "-rst-retries", "5", "-rst-interval", "1",
             f"ftp://127.0.0.1:{port}{source_dir}/r.bin", server.url("/r.bin", proxy.port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
        )
        lines: list[str] = []
        tripped = False
        try:
            assert cli.stdout is not None
            deadline = time.monotonic() + 90
            for line in cli.stdout:
                lines.append(line)
                assert time.monotonic() < deadline, "transfer took too long"
                if not tripped and line.startswith("111 Range Marker"):
                    tripped = proxy.data_proxies[0].trip(0, Kind.RESET)
            assert cli.wait(30) == 0, "".join(lines[-60:])
        finally:
            if cli.poll() is None:
                cli.kill()
                cli.wait()
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)
        assert tripped, "no restart marker arrived while the first data connections were open"
        assert any(line.startswith("REST ") for line in lines), "the client never resumed with REST"
        assert (server.root / "r.bin").read_bytes() == payload
        assert not [p for p in server.root.iterdir() if p.name.startswith(".")], "a partial was left behind"
    finally:
        shutil.rmtree(source_dir, ignore_errors=True)
