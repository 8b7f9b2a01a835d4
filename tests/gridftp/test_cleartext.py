"""Passwords in the clear are accepted from loopback peers only, unless the operator allows more."""

from __future__ import annotations

import asyncio

import pytest

from transfercore.gridftp.server import Connection, GridFTPServer, ServerConfig, _loopback
from transfercore.gridftp.users import UserDB, make_entry


class FakeWriter:
    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.sent = b""

    def get_extra_info(self, key: str) -> object:
        return (self.peer, 40000) if key == "peername" else ("127.0.0.1", 2811)

    def write(self, data: bytes) -> None:
        self.sent += data

    async def drain(self) -> None:
        return None

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        return None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.3.4.5", True), ("::1", True), ("::ffff:127.0.0.1", True),
     ("192.0.2.7", False), ("2001:db8::1", False), ("::ffff:192.0.2.7", False), ("not-an-address", False)],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert _loopback(host) is loopback


@pytest.mark.parametrize("allow", [False, True])
def test_password_from_another_host_needs_the_explicit_option(allow: bool) -> None:
    users = UserDB({"alice": make_entry("alice", "secret")})

    async def attempt(peer: str) -> tuple[bool, str | None, bytes]:
        server = GridFTPServer(ServerConfig(allow_cleartext_passwords=allow), driver=None, users=users)  # type: ignore[arg-type]
        writer = FakeWriter(peer)
        conn = Connection(server, asyncio.StreamReader(), writer)  # type: ignore[arg-type]
        try:
            result = await conn.check_login("alice", "secret")
            return result.ok, result.reason, writer.sent
        finally:
            server.pool.shutdown(wait=False)

    ok, reason, sent = asyncio.run(attempt("192.0.2.7"))
    assert ok is allow
    # the check only says why; the session sends the one reply (see test_login_reply)
    assert sent == b""
    if not allow:
        assert reason is not None and reason.startswith("Passwords are refused over an unencrypted connection")
    ok, reason, sent = asyncio.run(attempt("127.0.0.1"))
    assert ok and reason is None and sent == b""
