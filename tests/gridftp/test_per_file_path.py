"""What each small upload costs the server: trips to worker threads, writes of replies.

A small MODE E upload on the session's cached connection is opened and
received in one trip; its last ``111`` and its ``226`` go out in one write.
The server runs in a thread of this process so that the calls it hands to
its worker threads can be counted: a small file on a cached connection must
cost one trip (open, the ``150``, receive), and every way that trip can end
(a refused open, an abort, a client that announces another connection,
a file too large for it) must end as the two-trip path does.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from transfercore.gridftp import transfers
from transfercore.gridftp.modee import encode_block, encode_eod, encode_eof_eod
from transfercore.gridftp.server import GridFTPServer, ServerConfig
from transfercore.gridftp.session import SessionConfig
from transfercore.gridftp.users import UserDB
from transfercore.location import Location
from transfercore.registry import open_location

from .conftest import Client


class CountingPool(ThreadPoolExecutor):
    """The server's pool, remembering the name of every call handed to it."""

    def __init__(self) -> None:
        super().__init__(max_workers=8)
        self.names: list[str] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        inner = fn.func if isinstance(fn, functools.partial) else fn
        self.names.append(getattr(inner, "__name__", repr(inner)))
        return super().submit(fn, *args, **kwargs)


class InProcess:
    def __init__(self, port: int, pool: CountingPool) -> None:
        self.port = port
        self.pool = pool


@pytest.fixture
def server(tmp_path: Path) -> Iterator[InProcess]:
    driver = open_location(Location("posix", "/", options={"root": str(tmp_path)})).driver
    config = ServerConfig(
        host="127.0.0.1", port=0, session=SessionConfig(anonymous=True, anonymous_write=True, marker_interval=0.2)
    )
    loop = asyncio.new_event_loop()
    srv = GridFTPServer(config, driver, UserDB({}))
    pool = CountingPool()
    srv.pool = pool
    port = loop.run_until_complete(srv.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield InProcess(port, pool)
    finally:

        async def shutdown() -> None:
            await srv.close()
            # sessions the tests left open end here, not in a closed loop
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def cached_session(srv: InProcess) -> tuple[Client, socket.socket, tuple[str, int]]:
    """A logged-in session whose first upload left its data connection cached."""
    c = Client(srv.port)
    c.login()
    assert c.cmd("TYPE I")[0] == 200
    assert c.cmd("MODE E")[0] == 200
    hp = c.pasv()
    assert c.cmd("ALLO 5")[0] == 200
    c.raw(b"STOR /first.bin\r\n")
    d = socket.create_connection(hp, timeout=20)
    d.sendall(encode_block(0, b"first") + encode_eof_eod(1, close=False))
    assert c.until_final()[-1][0] == 226
    return c, d, hp


def test_a_small_file_on_a_cached_connection_costs_one_trip(server: InProcess, tmp_path: Path) -> None:
    c, d, _ = cached_session(server)
    payload = os.urandom(100_000)
    server.pool.names.clear()
    assert c.cmd(f"ALLO {len(payload)}")[0] == 200
    c.raw(b"STOR /small.bin\r\n")
    d.sendall(encode_block(0, payload) + encode_eof_eod(1, close=False))
    replies = c.until_final()
    assert [code for code, _ in replies if code not in (111, 112)] == [150, 226], replies
    assert (tmp_path / "small.bin").read_bytes() == payload
    # opened and received in one trip; the other calls are the group commit's
    assert server.pool.names.count("_open_and_receive") == 1, server.pool.names
    assert "open_write" not in server.pool.names and "receive_mode_e" not in server.pool.names, server.pool.names
    # and the connection stays cached for the next one
    assert c.cmd("ALLO 3")[0] == 200
    c.raw(b"STOR /next.bin\r\n")
    d.sendall(encode_block(0, b"abc") + encode_eof_eod(1, close=False))
    assert c.until_final()[-1][0] == 226
    assert (tmp_path / "next.bin").read_bytes() == b"abc"


def test_a_larger_file_takes_the_two_trips(server: InProcess, tmp_path: Path) -> None:
    c, d, _ = cached_session(server)
    payload = os.urandom(transfers.ONE_TRIP_LIMIT + 1)
    server.pool.names.clear()
    assert c.cmd(f"ALLO {len(payload)}")[0] == 200
    c.raw(b"STOR /large.bin\r\n")
    d.sendall(encode_block(0, payload) + encode_eof_eod(1, close=False))
    assert c.until_final()[-1][0] == 226
    assert (tmp_path / "large.bin").read_bytes() == payload
    assert "open_write" in server.pool.names and "_open_and_receive" not in server.pool.names, server.pool.names


def test_a_refused_open_on_a_cached_connection_has_no_150(server: InProcess, tmp_path: Path) -> None:
    c, d, _ = cached_session(server)
    # the parent of the destination is a file: the storage refuses to open it
    assert c.cmd("ALLO 3")[0] == 200
    c.raw(b"STOR /first.bin/inside.bin\r\n")
    d.sendall(encode_block(0, b"xyz") + encode_eof_eod(1, close=False))
    replies = c.until_final()
    assert len(replies) == 1 and replies[0][0] >= 500, replies
    assert (tmp_path / "first.bin").read_bytes() == b"first"
    # the session goes on (the failed transfer ended the caching: a new data setup)
    assert c.cmd("NOOP")[0] == 200
    hp = c.pasv()
    assert c.cmd("ALLO 3")[0] == 200
    c.raw(b"STOR /after.bin\r\n")
    e = socket.create_connection(hp, timeout=20)
    e.sendall(encode_block(0, b"new") + encode_eof_eod(1))
    assert c.until_final()[-1][0] == 226
    assert (tmp_path / "after.bin").read_bytes() == b"new"


def test_a_second_connection_announced_by_the_eof_is_accepted(server: InProcess, tmp_path: Path) -> None:
    c, d, hp = cached_session(server)
    payload = os.urandom(200_000)
    assert c.cmd(f"ALLO {len(payload)}")[0] == 200
    c.raw(b"STOR /two.bin\r\n")
    # half on the cached connection, whose EOF says two connections carry the data
    d.sendall(encode_block(0, payload[:100_000]) + encode_eof_eod(2, close=False))
    e = socket.create_connection(hp, timeout=20)
    e.sendall(encode_block(100_000, payload[100_000:]) + encode_eod())
    replies = c.until_final()
    assert replies[0][0] == 150 and replies[-1][0] == 226, replies
    assert (tmp_path / "two.bin").read_bytes() == payload


@pytest.mark.parametrize("allo", [True, False], ids=["allo", "spooled"])
def test_an_abort_during_the_trip_publishes_nothing(server: InProcess, tmp_path: Path, allo: bool) -> None:
    c, d, _ = cached_session(server)
    before = {p.name for p in tmp_path.iterdir()}
    if allo:
        assert c.cmd("ALLO 100000")[0] == 200
    c.raw(b"STOR /ab.bin\r\n")
    d.sendall(encode_block(0, b"z" * 1000))
    assert c.reply()[0] == 150
    codes = c.abort()
    assert [code for code in codes if code not in (111, 112)] == [426, 226]
    assert c.cmd("NOOP")[0] == 200
    # no object: at most what a REST resumes from (a hidden partial, or the spool's record)
    left = sorted(p.name for p in tmp_path.iterdir() if p.name not in before)
    assert all(name.startswith(".ab.bin." if allo else ".tc-spool-") for name in left), left


def test_the_last_marker_and_the_226_go_out_in_one_write(
    server: InProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[bytes] = []
    real_write = asyncio.StreamWriter.write

    def write(self: asyncio.StreamWriter, data: bytes) -> None:  # type: ignore[override]
        writes.append(bytes(data))
        real_write(self, data)

    monkeypatch.setattr(asyncio.StreamWriter, "write", write)
    c, d, _ = cached_session(server)
    writes.clear()
    assert c.cmd("ALLO 4")[0] == 200
    c.raw(b"STOR /w.bin\r\n")
    d.sendall(encode_block(0, b"four") + encode_eof_eod(1, close=False))
    replies = c.until_final()
    assert [code for code, _ in replies] == [150, 111, 226], replies
    assert any(w.startswith(b"111 Range Marker 0-4\r\n226 ") for w in writes), writes


def test_a_file_without_allo_is_spooled_received_and_written_in_one_trip(server: InProcess, tmp_path: Path) -> None:
    c, d, hp = cached_session(server)
    payload = os.urandom(150_000)
    server.pool.names.clear()
    c.raw(b"STOR /spooled.bin\r\n")  # no ALLO: the size is known only at the EOF
    d.sendall(encode_block(0, payload) + encode_eof_eod(1, close=False))
    replies = c.until_final()
    assert [code for code, _ in replies if code not in (111, 112)] == [150, 226], replies
    assert (tmp_path / "spooled.bin").read_bytes() == payload
    assert server.pool.names.count("_spool_and_receive") == 1, server.pool.names
    for two_trip in ("_open_spool", "write_spooled", "receive_mode_e"):
        assert two_trip not in server.pool.names, server.pool.names
    # a second connection the EOF announces is accepted as before
    c.raw(b"STOR /spooled2.bin\r\n")
    d.sendall(encode_block(0, payload[:70_000]) + encode_eof_eod(2, close=False))
    e = socket.create_connection(hp, timeout=20)
    e.sendall(encode_block(70_000, payload[70_000:]) + encode_eod())
    assert c.until_final()[-1][0] == 226
    assert (tmp_path / "spooled2.bin").read_bytes() == payload


@pytest.mark.parametrize("allo", [True, False], ids=["allo", "spooled"])
def test_a_connection_added_during_the_trip_is_received_beside_it(
    server: InProcess, tmp_path: Path, allo: bool
) -> None:
    """A client that fills a new connection before it writes the cached one: no wait for the data timeout."""
    c, d, hp = cached_session(server)
    # spooled: more than the kernel holds for a connection nobody reads (an ALLO'd trip takes at most 1 MiB)
    payload = os.urandom(900_000 if allo else 12_000_000)
    if allo:
        assert c.cmd(f"ALLO {len(payload)}")[0] == 200
    c.raw(b"STOR /added.bin\r\n")
    e = socket.create_connection(hp, timeout=20)
    e.sendall(encode_block(0, payload) + encode_eod())  # blocks until the server reads it
    d.sendall(encode_eof_eod(2, close=False))
    replies = c.until_final()
    assert replies[0][0] == 150 and replies[-1][0] == 226, replies
    assert (tmp_path / "added.bin").read_bytes() == payload
