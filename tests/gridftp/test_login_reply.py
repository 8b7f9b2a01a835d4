"""A refused login gets exactly one reply to its PASS, through a real socket.

The server listens on 127.0.0.1 only; ``_loopback`` is patched to call that
address remote, so the refusal path for passwords from another host runs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from transfercore.gridftp import server as server_mod
from transfercore.gridftp.server import GridFTPServer, ServerConfig
from transfercore.gridftp.session import SessionConfig
from transfercore.gridftp.users import UserDB, make_entry
from transfercore.location import Location
from transfercore.registry import open_location

from .conftest import Client


@pytest.fixture
def inprocess(tmp_path: Path) -> Iterator[int]:
    """A GridFTP server in a thread of this process, on a free loopback port."""
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


def test_refused_password_from_another_host_gets_one_reply(inprocess: int, monkeypatch) -> None:
    monkeypatch.setattr(server_mod, "_loopback", lambda host: False)
    c = Client(inprocess)
    assert c.cmd("USER alice")[0] == 331
    code, text = c.cmd("PASS secret")
    assert code == 530 and "Passwords are refused over an unencrypted connection" in text
    # the next command reads its own reply, not a second 530 left over from PASS
    assert c.cmd("NOOP") == (200, "200 Command Successful.")
    assert c.cmd("USER anonymous")[0] == 331
    assert c.cmd("PASS x@y")[0] == 230


def test_wrong_password_from_loopback_gets_one_reply(inprocess: int) -> None:
    c = Client(inprocess)
    assert c.cmd("USER alice")[0] == 331
    assert c.cmd("PASS wrong") == (530, "530 Login incorrect.")
    assert c.cmd("NOOP")[0] == 200
