"""An upload into storage that takes its bytes in order gives its large blocks away, not lends them.

The server receives each block of at least 64 KiB of such an upload into a
buffer of its own (``transfercore.blockpool``) and hands it to the reorder
window and the writer (``Writer.write_owned``); a small upload lends its
blocks as before.  Here the mock driver in its ordered model ("prefix")
stands in for HPSS, its writers recording how each block reached them.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator

import pytest
from transfercore_mock.writer import MockWriter

from transfercore.contract import Writer
from transfercore.gridftp.modee import encode_block, encode_eod, encode_eof_eod
from transfercore.gridftp.server import GridFTPServer, ServerConfig
from transfercore.gridftp.session import SessionConfig
from transfercore.gridftp.users import UserDB
from transfercore.location import parse_location
from transfercore.registry import open_location

from .conftest import Client
from .test_server import data_conn, stor_mode_e

KiB = 1024
BLOCK = 256 * KiB


@pytest.fixture
def ordered_server() -> Iterator[tuple[int, object]]:
    driver = open_location(parse_location("mock://given/?model=prefix")).driver
    config = ServerConfig(host="127.0.0.1", port=0, session=SessionConfig(anonymous=True, anonymous_write=True))
    loop = asyncio.new_event_loop()
    server = GridFTPServer(config, driver, UserDB({}))
    port = loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield port, driver
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def how_blocks_came(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = {"given": [], "lent": []}
    write, given = MockWriter.write, Writer.write_owned

    def lent(self: MockWriter, offset: int, data: bytes | bytearray | memoryview) -> None:
        seen["lent"].append(offset)
        write(self, offset, data)

    def owned(self: MockWriter, offset: int, data: memoryview, release: Callable[[], None]) -> None:
        seen["given"].append(offset)
        given(self, offset, data, release)
        # the default writes through write() (the window delivers one block at a time): counted as given
        assert seen["lent"].pop() == offset

    monkeypatch.setattr(MockWriter, "write", lent)
    monkeypatch.setattr(MockWriter, "write_owned", owned)
    return seen


def upload(port: int, path: str, payload: bytes, block: int) -> None:
    """``payload`` in blocks of ``block`` over two connections, each sending every other block
    in descending order of the whole, so that most blocks arrive ahead of their turn."""
    c = Client(port)
    c.login()
    hp = stor_mode_e(c, path, len(payload))
    conns = [data_conn(hp), data_conn(hp)]
    offsets = list(range(0, len(payload), block))
    for i, off in enumerate(reversed(offsets)):
        conns[i % 2].sendall(encode_block(off, payload[off : off + block]))
    conns[0].sendall(encode_eof_eod(2))
    conns[1].sendall(encode_eod())
    replies = c.until_final()
    for conn in conns:
        conn.close()
    c.close()
    assert replies[-1][0] == 226, replies


def stored(driver: object, path: str, size: int) -> bytes:
    with driver.open_read(path) as reader:  # type: ignore[attr-defined]
        return bytes(reader.read(0, size))


def test_a_large_upload_gives_its_blocks_away_and_a_small_one_lends_them(
    ordered_server: tuple[int, object], how_blocks_came: dict[str, list[int]]
) -> None:
    port, driver = ordered_server
    large = os.urandom(6 * 1024 * KiB + 1000)  # past POOL_FROM, a short last block
    upload(port, "/large.bin", large, BLOCK)
    assert stored(driver, "/large.bin", len(large)) == large
    assert sorted(how_blocks_came["given"]) == list(range(0, len(large), BLOCK))[:-1]
    assert how_blocks_came["lent"] == [len(large) - 1000]  # the 1000-byte block: too small to give

    how_blocks_came["given"].clear()
    how_blocks_came["lent"].clear()
    small = os.urandom(1024 * KiB)
    upload(port, "/small.bin", small, BLOCK)
    assert stored(driver, "/small.bin", len(small)) == small
    assert how_blocks_came["given"] == []
    assert sorted(how_blocks_came["lent"]) == list(range(0, len(small), BLOCK))
