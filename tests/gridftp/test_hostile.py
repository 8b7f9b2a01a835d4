"""Hostile or broken MODE E peers against the server: a clear error reply, the session goes on,
nothing published that is not complete.  (The window's own refusals are tested without sockets
in tests/test_reorder.py, the decoder's in test_modee.py.)"""

from __future__ import annotations

import os
import socket
import struct

import pytest

from transfercore.gridftp.modee import encode_block, encode_eod, encode_eof_eod

from .conftest import Client
from .test_server import data_conn, stor_mode_e


@pytest.fixture(params=["posix", "hpss"])
def target(request, serve, root, tmp_path, monkeypatch):
    """A server and the directory where its driver stores files."""
    if request.param == "posix":
        return serve("--root", str(root), "--anonymous-write", "--data-timeout", "3"), root
    emu = tmp_path / "emu"
    emu.mkdir()
    monkeypatch.setenv("HPSS_EMU_ROOT", str(emu))
    srv = serve("--driver", "hpss:///?block=64KiB&segment=64KiB", "--anonymous-write", "--data-timeout", "3")
    return srv, emu


def visible(where) -> list[str]:
    return sorted(p.name for p in where.iterdir() if not p.name.startswith((".hpss", ".")))


def session_goes_on(c: Client) -> None:
    assert c.cmd("NOOP")[0] == 200
    assert c.cmd("TYPE I")[0] == 200


@pytest.mark.parametrize(
    "blocks",
    [
        # the same bytes twice, on two connections
        [(0, encode_block(0, b"a" * 1000)), (1, encode_block(500, b"b" * 1000))],
        # a block far past the announced size
        [(0, encode_block(0, b"a" * 1000)), (1, encode_block(1 << 50, b"z" * 10))],
        # a block ending just past the size
        [(0, encode_block(0, b"a" * 1000)), (1, encode_block(1500, b"z" * 600))],
    ],
    ids=["overlap", "absurd-offset", "past-size"],
)
def test_bad_offsets_fail_the_transfer_with_451(target, blocks):
    srv, where = target
    c = Client(srv.port)
    c.login()
    hp = stor_mode_e(c, "/bad.bin", 2000)
    conns = [data_conn(hp), data_conn(hp)]
    for i, raw in blocks:
        try:
            conns[i].sendall(raw)
        except OSError:
            pass  # the server may already have closed it
    for i, conn in enumerate(conns):
        try:
            conn.sendall(encode_eof_eod(2) if i == 0 else encode_eod())
        except OSError:
            pass
    replies = c.until_final()
    assert replies[-1][0] == 451, replies
    assert visible(where) == []
    session_goes_on(c)
    c.close()


def test_connection_stopping_mid_block(target):
    srv, where = target
    c = Client(srv.port)
    c.login()
    hp = stor_mode_e(c, "/cut.bin", 1_000_000)
    d = data_conn(hp)
    d.sendall(struct.pack("!BQQ", 0, 500_000, 0) + os.urandom(1000))
    d.close()
    replies = c.until_final()
    assert replies[-1][0] == 451 and "middle of a block" in replies[-1][1], replies
    assert visible(where) == []
    session_goes_on(c)
    c.close()


def test_sixty_four_data_connections_are_refused_cleanly(target):
    srv, where = target
    c = Client(srv.port)
    c.login()
    hp = stor_mode_e(c, "/many.bin", 1000)
    conns = []
    try:
        for _ in range(64):
            try:
                conns.append(socket.create_connection(hp, timeout=20))
            except ConnectionRefusedError:
                # the server failed the transfer at the 33rd and closed its listener: the rest is refused
                break
        assert len(conns) > 32, f"only {len(conns)} data connections were made before the listener closed"
        replies = c.until_final()
    finally:
        for s in conns:
            s.close()
    assert replies[-1][0] == 451 and "more than 32 data connections" in replies[-1][1], replies
    assert visible(where) == []
    session_goes_on(c)
    # The next transfer works.
    payload = os.urandom(5000)
    hp = stor_mode_e(c, "/ok.bin", len(payload))
    d = data_conn(hp)
    d.sendall(encode_block(0, payload) + encode_eof_eod(1))
    assert c.until_final()[-1][0] == 226
    assert (where / "ok.bin").read_bytes() == payload
    c.close()


def test_out_of_order_on_one_connection_beyond_the_window_stalls_into_451(serve, tmp_path, monkeypatch):
    """Into an ordered destination, a sender that never sends the next block while holding later
    ones fills the window; the wait ends after the data timeout with a clear 451."""
    emu = tmp_path / "emu"
    emu.mkdir()
    monkeypatch.setenv("HPSS_EMU_ROOT", str(emu))
    srv = serve("--driver", "hpss:///?block=64KiB&segment=64KiB", "--anonymous-write", "--data-timeout", "1")
    c = Client(srv.port)
    c.login()
    size = 200 << 20
    hp = stor_mode_e(c, "/hole.bin", size)
    d = data_conn(hp)
    try:
        # Everything except the first block: more than the 32 MiB window can hold.
        chunk = b"x" * (1 << 20)
        for off in range(1 << 20, 64 << 20, 1 << 20):
            d.sendall(encode_block(off, chunk))
    except OSError:
        pass
    replies = c.until_final()
    d.close()
    assert replies[-1][0] in (426, 451) and "offset 0" in replies[-1][1], replies
    assert visible(emu) == []
    session_goes_on(c)
    c.close()


def test_abort_wakes_connections_waiting_at_a_full_window(serve, tmp_path, monkeypatch):
    """ABOR while every connection waits for room in the reorder window ends at once, not after
    the data timeout, and publishes nothing."""
    import time

    emu = tmp_path / "emu"
    emu.mkdir()
    monkeypatch.setenv("HPSS_EMU_ROOT", str(emu))
    srv = serve("--driver", "hpss:///?block=64KiB&segment=64KiB", "--anonymous-write", "--data-timeout", "60")
    c = Client(srv.port)
    c.login()
    hp = stor_mode_e(c, "/held.bin", 200 << 20)
    d = data_conn(hp)
    d.settimeout(2)
    chunk = b"x" * (1 << 20)
    try:
        for off in range(1 << 20, 100 << 20, 1 << 20):  # never the first MiB: the window fills
            d.sendall(encode_block(off, chunk))
    except OSError:
        pass  # TCP pushes back: the server stopped reading
    assert c.reply()[0] == 150
    t0 = time.monotonic()
    c.raw(b"ABOR\r\n")
    replies = c.until_final()
    codes = [code for code, _ in replies]
    while codes[-1] != 226:
        replies = c.until_final()
        codes += [code for code, _ in replies]
    assert time.monotonic() - t0 < 10, codes
    assert 426 in codes or 451 in codes, codes
    d.close()
    assert visible(emu) == []
    session_goes_on(c)
    c.close()
