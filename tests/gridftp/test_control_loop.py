"""The session's control loop: a session whose command worker ends stops reading and closes,
and the server goes on serving."""

from __future__ import annotations

import socket
import time

from transfercore.gridftp import server as server_mod

from .conftest import Client


def test_a_session_whose_worker_broke_closes_and_the_server_serves_on(inprocess: int, monkeypatch) -> None:
    real_process = server_mod.Connection.process

    async def process(self, item):  # noqa: ANN001, ANN202
        if getattr(item, "verb", None) == "SITE":
            raise RuntimeError("a bug in a command handler")
        return await real_process(self, item)

    monkeypatch.setattr(server_mod.Connection, "process", process)
    c = Client(inprocess)
    assert c.cmd("USER anonymous")[0] == 331
    assert c.cmd("PASS x@y")[0] == 230
    c.sock.settimeout(10)
    c.sock.sendall(b"SITE HELP\r\n")
    # The worker died while the session's task waited to read the next command: the
    # session ends at once (no reply is owed to a command that broke the worker).
    started = time.monotonic()
    assert c.sock.recv(4096) == b"", "the session must close, not wait for the next command"
    assert time.monotonic() - started < 5
    # One broken session never stops the server.
    other = Client(inprocess)
    assert other.cmd("USER anonymous")[0] == 331
    assert other.cmd("PASS x@y")[0] == 230
    assert other.cmd("NOOP")[0] == 200


def test_quit_ends_the_session_while_its_control_read_waits(inprocess: int) -> None:
    c = Client(inprocess)
    assert c.cmd("USER anonymous")[0] == 331
    assert c.cmd("PASS x@y")[0] == 230
    assert c.cmd("QUIT")[0] == 221
    c.sock.settimeout(10)
    try:
        rest = c.sock.recv(4096)
    except ConnectionResetError:
        rest = b""
    assert rest == b""
    with socket.create_connection(("127.0.0.1", inprocess), timeout=10) as again:
        assert again.recv(4096).startswith(b"220")
