"""Fixtures: ``transfercore serve`` and the real Globus server as subprocesses, and a raw control client."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from transfercore.gridftp.server import GridFTPServer, ServerConfig
from transfercore.gridftp.session import SessionConfig
from transfercore.gridftp.users import UserDB, make_entry
from transfercore.location import Location
from transfercore.registry import open_location
from transfercore.testing.loopback import start_globus_server, wait_port, wait_port_file

HAVE_GLOBUS = bool(shutil.which("globus-url-copy") and shutil.which("globus-gridftp-server"))
GLOBUS_MISSING = (
    "this test runs the real Globus tools: apt-get install globus-gass-copy-progs globus-gridftp-server-progs"
)
#: Interoperability tests fail, never skip, without the real tools: CI installs them.
needs_globus = pytest.mark.globus


@pytest.fixture(autouse=True)
def _require_globus(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("globus") is not None and not HAVE_GLOBUS:
        pytest.fail(GLOBUS_MISSING)


class Served:
    """A running ``transfercore serve``."""

    def __init__(self, args: list[str], port: int, log: Path) -> None:
        #: 0: the kernel picks a free port when the server listens (read back from --port-file)
        self.args = args
        self.port = port
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> Served:
        cmd = [sys.executable, "-m", "transfercore", "serve", "--port", str(self.port), *self.args]
        # The server's state (the spool of uploads without ALLO) stays beside the test.
        env = os.environ | {"XDG_STATE_HOME": str(self.log.parent / "state")}
        port_file = self.log.parent / f"serve-port-{id(self)}"
        if self.port == 0:
            port_file.unlink(missing_ok=True)
            cmd += ["--port-file", str(port_file)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"), env=env)
        if self.port == 0:
            self.port = wait_port_file(port_file, self.proc)
        wait_port(self.port, self.proc)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def url(self, path: str) -> str:
        return f"ftp://127.0.0.1:{self.port}{path}"


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    started: list[Served] = []

    def start(*args: str, port: int | None = None) -> Served:
        s = Served(list(args), port or 0, tmp_path / "serve.log").start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    return r


@pytest.fixture
def real_server(tmp_path: Path) -> Iterator[int]:
    """The real globus-gridftp-server, anonymous mapped to nobody, on a free loopback port."""
    if not HAVE_GLOBUS:
        pytest.fail(GLOBUS_MISSING)
    pidfile = tmp_path / "gsrv.pid"
    port = start_globus_server(0, pidfile, tmp_path / "gsrv.log")
    yield port
    try:
        os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)
    except (OSError, ValueError):
        pass


class Client:
    """A deliberately low-level FTP control client for protocol edge cases."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buf = b""
        self.greeting = self.reply()

    def line(self) -> str:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("control connection closed")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\r\n", 1)
        return raw.decode()

    def reply(self) -> tuple[int, str]:
        first = self.line()
        lines = [first]
        if first[3:4] == "-":
            while not (lines[-1][:3] == first[:3] and lines[-1][3:4] == " "):
                lines.append(self.line())
        return int(first[:3]), "\n".join(lines)

    def raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def cmd(self, text: str) -> tuple[int, str]:
        self.sock.sendall(text.encode() + b"\r\n")
        return self.reply()

    def until_final(self) -> list[tuple[int, str]]:
        """Replies up to and including the first non-1xx one."""
        out = []
        while True:
            code, text = self.reply()
            out.append((code, text))
            if code >= 200:
                return out

    def abort(self) -> list[int]:
        """``ABOR`` as a Telnet client sends it (IP, Synch): the reply codes up to the ``226`` that ends it."""
        self.raw(b"\xff\xf4\xff\xf2ABOR\r\n")
        codes: list[int] = []
        while 226 not in codes:
            codes.append(self.reply()[0])
        return codes

    def login(self, user: str = "anonymous", password: str = "x@y") -> None:
        assert self.cmd(f"USER {user}")[0] == 331
        code, text = self.cmd(f"PASS {password}")
        assert code == 230, text

    def pasv(self) -> tuple[str, int]:
        code, text = self.cmd("PASV")
        assert code == 227, text
        nums = [int(n) for n in text[text.index("(") + 1 : text.index(")")].split(",")]
        return ".".join(map(str, nums[:4])), nums[4] * 256 + nums[5]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def inprocess(tmp_path: Path) -> Iterator[int]:
    """A GridFTP server in a thread of this process, on a free loopback port (user alice, password secret)."""
    driver = open_location(Location("posix", "/", options={"root": str(tmp_path)})).driver
    users = UserDB({"alice": make_entry("alice", "secret")})
    config = ServerConfig(host="127.0.0.1", port=0, session=SessionConfig(anonymous=True))
    loop = asyncio.new_event_loop()
    server = GridFTPServer(config, driver, users)
    port = loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
