"""Fixtures: ``transfercore serve-http`` as a real process on 127.0.0.1, and small raw clients."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

from transfercore.testing.loopback import wait_port, wait_port_file


class HttpServer:
    """A running ``transfercore serve-http``; :meth:`kill` and :meth:`start` keep its state."""

    def __init__(self, args: list[str], state: Path, log: Path, env: dict[str, str]) -> None:
        self.args = args
        self.state = state
        self.log = log
        self.env = env
        # The first start lets the server pick its port (``--port 0 --port-file``): a port from
        # free_port() can be taken by another process before the server listens, and the test
        # would then talk to someone else.  A restart keeps the port, so URLs stay valid.
        self.port = 0
        self.port_file = log.with_name(f"{log.stem}.{id(self)}.port")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> HttpServer:
        cmd = [sys.executable, "-m", "transfercore", "serve-http", "--port", str(self.port),
               "--state-dir", str(self.state), *self.args]
        if not self.port:
            self.port_file.unlink(missing_ok=True)
            cmd += ["--port-file", str(self.port_file)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=self.env)
        if self.port:
            wait_port(self.port, self.proc)
        else:
            self.port = wait_port_file(self.port_file, self.proc)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | None = None) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()


@attrs.frozen
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


@pytest.fixture
def serve_http(tmp_path: Path) -> Iterator[Callable[..., HttpServer]]:
    started: list[HttpServer] = []

    def start(*args: str, env: dict[str, str] | None = None, state: Path | None = None) -> HttpServer:
        server = HttpServer(list(args), state or tmp_path / "uploads-state", tmp_path / "serve-http.log",
                            os.environ | {"XDG_STATE_HOME": str(tmp_path / "xdg")} | (env or {}))
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def poll() -> Callable[..., None]:
    return poll_until


#: The large client tests' upload: 256 MiB and an odd tail, so the last request is short.
BIG = (256 << 20) + 12_345


@attrs.frozen
class Source:
    path: Path
    size: int
    sha256: str


@pytest.fixture(scope="session")
def big_source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    """One random 256 MiB file for every large upload of the run (drawing it costs a second)."""
    path = tmp_path_factory.mktemp("big") / "src.bin"
    digest = hashlib.sha256()
    left = BIG
    with open(path, "wb") as f:
        while left:
            piece = os.urandom(min(left, 16 << 20))
            digest.update(piece)
            f.write(piece)
            left -= len(piece)
    yield Source(path, BIG, digest.hexdigest())
    path.unlink()  # pytest keeps the last runs' temporary directories: not their 256 MiB files


@attrs.frozen
class Destination:
    """Where a test's server publishes: the posix driver under a root, or the HPSS emulator."""

    kind: str
    args: tuple[str, ...]
    env: dict[str, str]
    where: Path

    def sha256(self, name: str) -> str | None:
        """The published object's digest, ``None`` while nothing is published under ``name``."""
        digest = hashlib.sha256()
        if self.kind == "posix":
            try:
                with open(self.where / name, "rb") as f:
                    while block := f.read(8 << 20):
                        digest.update(block)
            except FileNotFoundError:
                return None
            return digest.hexdigest()
        from transfercore_hpss.driver import HpssDriver

        from transfercore.errors import NotFound

        old = os.environ.get("HPSS_EMU_ROOT")
        os.environ["HPSS_EMU_ROOT"] = self.env["HPSS_EMU_ROOT"]
        try:
            try:
                reader = HpssDriver(options={"block": 1 << 20, "segment": 1 << 20}).open_read(f"/{name}")
            except NotFound:
                return None
            with reader:
                for pos in range(0, reader.size, 8 << 20):
                    digest.update(reader.read(pos, min(8 << 20, reader.size - pos)))
        finally:
            if old is None:
                del os.environ["HPSS_EMU_ROOT"]
            else:
                os.environ["HPSS_EMU_ROOT"] = old
        return digest.hexdigest()


@pytest.fixture(params=["posix", "hpss"])
def destination(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Destination]:
    where = tmp_path / request.param
    where.mkdir()
    if request.param == "posix":
        yield Destination("posix", ("--root", str(where)), {}, where)
    else:
        yield Destination("hpss", ("--driver", "hpss:///?block=1MiB&segment=4MiB"),
                          {"HPSS_EMU_ROOT": str(where)}, where)
    shutil.rmtree(where, ignore_errors=True)  # the 256 MiB are not kept with the temporary directory


@pytest.fixture
def recorded_offsets() -> Callable[[Path], list[int]]:
    return offsets_recorded


def offsets_recorded(state: Path) -> list[int]:
    """The offsets the server has recorded as durable, one per upload in its state directory."""
    offsets = []
    for path in state.glob("*.json"):
        try:
            offsets.append(int(json.loads(path.read_text())["offset"]))
        except FileNotFoundError:  # completed and forgotten meanwhile
            continue
    return offsets


def poll_until(check: Callable[[], bool], timeout: float = 20.0, what: str = "a condition") -> None:
    """Wait until ``check()`` holds, polling, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def raw() -> type[Raw]:
    return Raw


@attrs.frozen
class Head:
    status: int
    reason: str
    headers: dict[str, str]


class Raw:
    """A raw HTTP/1.1 client over one socket: it sees interim replies, which http.client misreads.

    Replies are read as they come, one head at a time, each within ``timeout`` seconds.
    """

    def __init__(self, port: int, timeout: float = 20.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def feed_until(self, data: bytes, check: Callable[[], bool], piece: int = 256 << 10) -> int:
        """Send ``data`` a piece at a time until ``check()`` holds (the server takes a durable point
        only as bytes come, so a test waiting for one keeps sending); the bytes sent.  Fails when
        every piece but the last went without it, and a while after."""
        sent = 0
        while sent < len(data) - piece:
            self.sock.sendall(data[sent:sent + piece])
            sent += piece
            if check():
                return sent
        poll_until(check, what=f"the check after {sent} bytes")  # the last durable point may land late
        return sent

    @staticmethod
    def request(method: str, path: str, headers: dict[str, str], version: str = "1.1") -> bytes:
        """A request head."""
        lines = [f"{method} {path} HTTP/{version}", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _fill(self, deadline: float) -> bool:
        """More bytes into the buffer; ``False`` at EOF."""
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def head(self) -> Head:
        """The next reply head, interim or final."""
        deadline = time.monotonic() + self.timeout
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill(deadline):
                raise EOFError(f"the connection closed before a reply head; got {self.buffer[:200]!r}")
        raw, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        _version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        return Head(int(status), reason, headers)

    def body(self, head: Head) -> bytes:
        n = int(head.headers.get("content-length", "0"))
        deadline = time.monotonic() + self.timeout
        while len(self.buffer) < n:
            if not self._fill(deadline):
                raise EOFError("the connection closed mid-body")
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def final(self) -> tuple[list[Head], Head, bytes]:
        """The interim heads, then the final head and its body."""
        interim = []
        while (h := self.head()).status < 200:
            interim.append(h)
        return interim, h, self.body(h)

    def closed(self, timeout: float) -> bool:
        """Whether the server closes the connection within ``timeout`` seconds (bytes before EOF are kept)."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not self._fill(deadline):
                    return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        return False


