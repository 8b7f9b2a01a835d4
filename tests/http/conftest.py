"""Fixtures: ``transfercore serve-http`` as a real process on 127.0.0.1, and a small raw client."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

from transfercore.testing.loopback import free_port, wait_port


class HttpServer:
    """A running ``transfercore serve-http``; :meth:`kill` and :meth:`start` keep its state."""

    def __init__(self, args: list[str], state: Path, log: Path, env: dict[str, str]) -> None:
        self.args = args
        self.state = state
        self.log = log
        self.env = env
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> HttpServer:
        cmd = [sys.executable, "-m", "transfercore", "serve-http", "--port", str(self.port),
               "--state-dir", str(self.state), *self.args]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=self.env)
        wait_port(self.port, self.proc)
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


def poll_until(check: Callable[[], bool], timeout: float = 20.0, what: str = "a condition") -> None:
    """Wait until ``check()`` holds, polling, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
