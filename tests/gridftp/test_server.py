"""The server against a raw client: MODE E edge cases, REST, limits, hostile input."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

import pytest

from transfercore.gridftp.markers import parse_range_marker
from transfercore.gridftp.modee import Data, EndOfFile, ModeEDecoder, encode_block, encode_eod, encode_eof_eod
from transfercore.ranges import RangeSet

from .conftest import Client


def data_conn(host_port: tuple[str, int]) -> socket.socket:
    return socket.create_connection(host_port, timeout=20)


def stor_mode_e(c: Client, path: str, size: int, rest: str | None = None) -> tuple[str, int]:
    assert c.cmd("TYPE I")[0] == 200
    assert c.cmd("MODE E")[0] == 200
    assert c.cmd("TREV RESTART 0.2")[0] == 200
    hp = c.pasv()
    assert c.cmd(f"ALLO {size}")[0] == 200
    if rest is not None:
        assert c.cmd(f"REST {rest}")[0] == 350
    c.raw(f"STOR {path}\r\n".encode())
    return hp


def markers(replies: list[tuple[int, str]]) -> RangeSet:
    out = RangeSet()
    for code, text in replies:
        if code == 111:
            out = out | parse_range_marker(text)
    return out


def test_out_of_order_blocks_on_two_connections(serve, root):
    srv = serve("--root", str(root), "--anonymous-write", "--marker-interval", "0.2")
    payload = os.urandom(300_000)
    c = Client(srv.port)
    c.login()
    hp = stor_mode_e(c, "/ooo.bin", len(payload))
    a, b = data_conn(hp), data_conn(hp)
    a.sendall(encode_block(200_000, payload[200_000:]))
    b.sendall(encode_block(100_000, payload[100_000:200_000]))
    a.sendall(encode_block(0, payload[:100_000]) + encode_eod())
    b.sendall(encode_eof_eod(2))
    replies = c.until_final()
    assert replies[0][0] == 150
    assert replies[-1][0] == 226, replies
    assert (root / "ooo.bin").read_bytes() == payload
    # The last marker before 226 completes the durable record.
    assert markers(replies) == RangeSet.span(0, len(payload))


def test_an_upload_that_announced_a_marker_ends_with_a_complete_one(serve, root):
    # A client following 111 markers holds a complete record before 226.
    srv = serve("--root", str(root), "--anonymous-write")
    payload = os.urandom(300_000)
    c = Client(srv.port)
    c.login()
    hp = stor_mode_e(c, "/slow.bin", len(payload))  # TREV RESTART 0.2
    d = data_conn(hp)
    d.sendall(encode_block(0, payload[:100_000]))
    assert c.reply()[0] == 150
    first = c.reply()
    while first[0] == 112:
        first = c.reply()
    assert first[0] == 111 and parse_range_marker(first[1]) == RangeSet.span(0, 100_000), first
    d.sendall(encode_block(100_000, payload[100_000:]) + encode_eof_eod(1))
    replies = [first, *c.until_final()]
    assert replies[-1][0] == 226, replies
    assert [code for code, _ in replies if code != 112][-2] == 111
    assert markers(replies) == RangeSet.span(0, len(payload))
    assert (root / "slow.bin").read_bytes() == payload


def test_missing_eof_is_not_226_and_not_published(serve, root):
    srv = serve("--root", str(root), "--anonymous-write", "--data-timeout", "1.5")
    c = Client(srv.port)
    c.login()
    hp = stor_mode_e(c, "/noeof.bin", 1000)
    d = data_conn(hp)
    d.sendall(encode_block(0, b"x" * 1000) + encode_eod())
    d.close()
    replies = c.until_final()
    assert replies[-1][0] == 451 and "EOF" in replies[-1][1]
    assert not (root / "noeof.bin").exists()
    assert c.cmd("NOOP")[0] == 200


@pytest.mark.parametrize(
    "header",
    [
        struct.pack("!BQQ", 0x01, 0, 0),
        struct.pack("!BQQ", 0x20, 4, 0),
        struct.pack("!BQQ", 0, 2**62, 0),
        struct.pack("!BQQ", 0, 10, 2**63 - 2),
    ],
)
def test_bad_header_fails_transfer_but_not_session(serve, root, header):
    srv = serve("--root", str(root), "--anonymous-write")
    c = Client(srv.port)
    c.login()
    hp = stor_mode_e(c, "/bad.bin", 100)
    d = data_conn(hp)
    d.sendall(header + b"abcd")
    replies = c.until_final()
    assert replies[-1][0] == 451, replies
    assert not (root / "bad.bin").exists()
    assert c.cmd("NOOP")[0] == 200


def test_blocks_past_allo_size_fail(serve, root):
    srv = serve("--root", str(root), "--anonymous-write")
    c = Client(srv.port)
    c.login()
    hp = stor_mode_e(c, "/big.bin", 10)
    d = data_conn(hp)
    d.sendall(encode_block(0, b"y" * 20) + encode_eof_eod(1))
    assert c.until_final()[-1][0] == 451
    assert not (root / "big.bin").exists()


def test_stream_short_upload_then_restart_from_durable_prefix(serve, root):
    srv = serve("--root", str(root), "--anonymous-write")
    payload = os.urandom(50_000)
    c = Client(srv.port)
    c.login()
    c.cmd("TYPE I")
    hp = c.pasv()
    c.cmd(f"ALLO {len(payload)}")
    c.raw(b"STOR /s.bin\r\n")
    d = data_conn(hp)
    d.sendall(payload[:20_000])
    d.close()  # in MODE S a close means EOF: fewer bytes than ALLO must not be 226
    replies = c.until_final()
    assert replies[-1][0] == 451 and "incomplete" in replies[-1][1]
    assert not (root / "s.bin").exists()
    # A restart past the durable prefix is refused ...
    hp = c.pasv()
    c.cmd(f"ALLO {len(payload)}")
    assert c.cmd("REST 30000")[0] == 350
    c.raw(b"STOR /s.bin\r\n")
    assert c.until_final()[-1][0] == 553
    # ... one inside it is accepted, and the file ends identical.
    hp = c.pasv()
    c.cmd(f"ALLO {len(payload)}")
    assert c.cmd("REST 20000")[0] == 350
    c.raw(b"STOR /s.bin\r\n")
    d = data_conn(hp)
    d.sendall(payload[20_000:])
    d.close()
    assert c.until_final()[-1][0] == 226
    assert (root / "s.bin").read_bytes() == payload


def test_rest_ranges_never_written_rejected(serve, root):
    srv = serve("--root", str(root), "--anonymous-write")
    c = Client(srv.port)
    c.login()
    stor_mode_e(c, "/r.bin", 1000, rest="0-500")
    replies = c.until_final()
    assert replies[-1][0] == 553
    assert c.cmd("REST 5-1")[0] == 501
    assert c.cmd("REST abc")[0] == 501


def test_stor_without_allo_is_spooled_and_a_restart_needs_a_spool(serve, root):
    srv = serve("--root", str(root), "--anonymous-write")
    payload = os.urandom(70_000)
    c = Client(srv.port)
    c.login()
    hp = c.pasv()
    c.raw(b"STOR /n.bin\r\n")
    d = data_conn(hp)
    d.sendall(payload)
    d.close()
    assert c.until_final()[-1][0] == 226
    assert (root / "n.bin").read_bytes() == payload
    c.pasv()
    assert c.cmd("REST 10")[0] == 350
    c.raw(b"STOR /n2.bin\r\n")
    code, text = c.until_final()[-1]
    assert code == 553 and "spool holds only nothing" in text
    assert not (root / "n2.bin").exists()


def test_mode_e_without_allo_gets_durable_markers_and_resumes_with_rest(serve, root, tmp_path):
    """No ALLO: the upload is spooled durably, 111 names fdatasync'd spool ranges, and after the
    data connection is cut a REST (still without ALLO) sends only the rest."""
    srv = serve("--root", str(root), "--anonymous-write", "--spool-dir", str(tmp_path / "spool"))
    payload = os.urandom(3_000_000)
    c = Client(srv.port)
    c.login()
    assert c.cmd("TYPE I")[0] == 200 and c.cmd("MODE E")[0] == 200
    assert c.cmd("TREV RESTART 0.1")[0] == 200
    hp = c.pasv()
    c.raw(b"STOR /noallo.bin\r\n")
    d = data_conn(hp)
    d.sendall(encode_block(0, payload[:1_000_000]) + encode_block(1_000_000, payload[1_000_000:2_000_000]))
    # Markers come for what is durable: wait for them (the socket's timeout bounds the wait).
    early: list = []
    while markers(early) != RangeSet.span(0, 2_000_000):
        early.append(c.reply())
        assert early[-1][0] < 200, early
    d.sendall(struct.pack("!BQQ", 0, 1_000_000, 2_000_000) + payload[2_000_000:2_100_000])
    d.close()
    replies = early + c.until_final()
    assert replies[-1][0] == 451, replies
    held = markers(replies)
    assert held == RangeSet.span(0, 2_000_000), held
    assert not (root / "noallo.bin").exists()
    hp = c.pasv()
    assert c.cmd(f"REST {held}")[0] == 350
    c.raw(b"STOR /noallo.bin\r\n")
    d = data_conn(hp)
    d.sendall(encode_block(2_000_000, payload[2_000_000:]) + encode_eof_eod(1))
    replies = c.until_final()
    assert replies[-1][0] == 226, replies
    assert (root / "noallo.bin").read_bytes() == payload
    assert list((tmp_path / "spool").iterdir()) == []  # the spool went with the stored upload
    c.close()


def test_mode_e_without_allo_with_hole_stores_nothing(serve, root):
    srv = serve("--root", str(root), "--anonymous-write")
    c = Client(srv.port)
    c.login()
    c.cmd("MODE E")
    hp = c.pasv()
    c.raw(b"STOR /h.bin\r\n")
    d = data_conn(hp)
    d.sendall(encode_block(0, b"a" * 10) + encode_block(20, b"b" * 10) + encode_eof_eod(1))
    replies = c.until_final()
    assert replies[-1][0] == 451 and "holes" in replies[-1][1]
    assert not (root / "h.bin").exists()


def _retr_active(c: Client, path: str, parallel: int, rest: str | None) -> tuple[list, list]:
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    port = lsock.getsockname()[1]
    c.cmd("TYPE I")
    c.cmd("MODE E")
    assert c.cmd(f"OPTS RETR Parallelism={parallel},{parallel},{parallel};")[0] == 200
    assert c.cmd(f"PORT 127,0,0,1,{port >> 8},{port & 255}")[0] == 200
    if rest:
        assert c.cmd(f"REST {rest}")[0] == 350
    c.raw(f"RETR {path}\r\n".encode())
    events: list = []
    conns = 0

    def drain(s: socket.socket) -> None:
        dec = ModeEDecoder()
        while not dec.done:
            chunk = s.recv(65536)
            if not chunk:
                break
            events.extend(dec.receive(chunk))
        s.close()

    threads = []
    lsock.settimeout(10)
    for _ in range(parallel):
        s, _ = lsock.accept()
        conns += 1
        t = threading.Thread(target=drain, args=(s,))
        t.start()
        threads.append(t)
    for t in threads:
        t.join(20)
    lsock.close()
    return events, c.until_final()


def test_retr_mode_e_parallel_sends_only_missing_ranges(serve, root):
    payload = os.urandom(3_000_000)
    (root / "g.bin").write_bytes(payload)
    srv = serve("--root", str(root), "--anonymous")
    c = Client(srv.port)
    c.login()
    events, replies = _retr_active(c, "/g.bin", 3, "0-1000000,2000000-2500000")
    assert replies[-1][0] == 226
    got = RangeSet.of(*((e.offset, e.offset + len(e.data)) for e in events if isinstance(e, Data)))
    assert got == RangeSet.of((1_000_000, 2_000_000), (2_500_000, 3_000_000))
    for e in events:
        if isinstance(e, Data):
            assert e.data == payload[e.offset : e.offset + len(e.data)]
    assert [e.eod_count for e in events if isinstance(e, EndOfFile)] == [3]


def test_anonymous_is_read_only_and_paths_confined(serve, root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    os.symlink(outside, root / "link")
    srv = serve("--root", str(root), "--anonymous")
    c = Client(srv.port)
    c.login()
    assert c.cmd("MKD /x")[0] == 550
    c.pasv()
    assert c.cmd("STOR /x")[0] == 550
    assert c.cmd("SIZE /../../etc/passwd")[0] == 550
    assert c.cmd("SIZE /link/secret")[0] == 550
    assert c.cmd("CKSM MD5 0 -1 /link/secret")[0] == 550


def test_hostile_control_input_keeps_server_alive(serve, root):
    srv = serve("--root", str(root), "--anonymous")
    c = Client(srv.port)
    assert c.cmd("PWD")[0] == 530
    c.raw(b"\xff\xfb\x01\x00\x01garbage\xfe\r\n")
    assert c.reply()[0] == 500
    c.raw(b"A" * 20000 + b"\r\n")
    assert c.reply()[0] == 500
    assert c.cmd("FROBNICATE")[0] == 500
    c.login()
    assert c.cmd("MODE X")[0] == 501
    assert c.cmd("PORT 1,2,3")[0] == 501
    assert c.cmd("PORT 10,1,2,3,4,5")[0] == 501  # not the client's address
    c.sock.close()
    # A fresh session still works.
    c2 = Client(srv.port)
    c2.login()
    assert c2.cmd("PWD")[0] == 257


def test_max_sessions_counts_logins_not_connections(serve, root):
    srv = serve("--root", str(root), "--anonymous", "--max-sessions", "1")
    c = Client(srv.port)
    for _ in range(50):  # the fixture's readiness probe may still hold the one session
        if c.cmd("USER anonymous")[0] == 331 and c.cmd("PASS x")[0] == 230:
            break
        c.close()
        time.sleep(0.05)
        c = Client(srv.port)
    # a connection that has not logged in holds no session slot: it is greeted, then its login is refused
    c2 = Client(srv.port)
    assert c2.greeting[0] == 220
    assert c2.cmd("USER anonymous")[0] == 331
    code, text = c2.cmd("PASS x")
    assert code == 421 and "Too many sessions (1)" in text
    assert c.cmd("PWD")[0] == 257


def test_namespace_commands(serve, root):
    srv = serve("--root", str(root), "--anonymous-write")
    (root / "f.txt").write_bytes(b"hello")
    c = Client(srv.port)
    c.login()
    assert c.cmd("MKD /d")[0] == 257
    assert c.cmd("CWD /d")[0] == 250
    assert c.cmd("PWD")[1] == '257 "/d" is current directory.'
    assert c.cmd("CDUP")[0] == 250
    assert c.cmd("SIZE f.txt") == (213, "213 5")
    assert c.cmd("MDTM f.txt")[0] == 213
    code, text = c.cmd("MLST /f.txt")
    assert code == 250 and "Type=file;" in text and "Size=5;" in text and text.endswith("250 End.")
    assert c.cmd("CKSM MD5 0 -1 /f.txt") == (213, "213 5d41402abc4b2a76b9719d911017c592")
    assert c.cmd("CKSM ADLER32 1 3 /f.txt")[0] == 213
    assert c.cmd("RNFR /f.txt")[0] == 350
    assert c.cmd("RNTO /g.txt")[0] == 250
    assert (root / "g.txt").read_bytes() == b"hello"
    assert c.cmd("DELE /g.txt")[0] == 250
    assert c.cmd("RMD /d")[0] == 250
    assert c.cmd("SIZE /nope")[0] == 550
    assert c.cmd("QUIT")[0] == 221


def test_abort_mid_upload_keeps_partial_unpublished(serve, root):
    srv = serve("--root", str(root), "--anonymous-write")
    c = Client(srv.port)
    c.login()
    hp = stor_mode_e(c, "/ab.bin", 1_000_000)
    d = data_conn(hp)
    d.sendall(encode_block(0, b"z" * 1000))
    assert c.reply()[0] == 150
    codes = c.abort()
    # The durable part may be announced (111) before the failure is reported.
    assert [code for code in codes if code != 111] == [426, 226]
    assert not (root / "ab.bin").exists()
    assert c.cmd("NOOP")[0] == 200


def test_idle_timeout(serve, root):
    srv = serve("--root", str(root), "--anonymous", "--idle-timeout", "0.5")
    c = Client(srv.port)
    assert c.reply()[0] == 421


@pytest.mark.parametrize("asked", [False, True])
def test_retr_perf_markers_only_when_the_client_asks(serve, root, asked):
    payload = os.urandom(2_000_000)
    (root / "p.bin").write_bytes(payload)
    srv = serve("--root", str(root), "--anonymous")
    c = Client(srv.port)
    c.login()
    if asked:
        assert c.cmd("OPTS RETR Markers=1;")[0] == 200
    events, replies = _retr_active(c, "/p.bin", 2, None)
    assert replies[-1][0] == 226
    perf = [text for code, text in replies if code == 112]
    if asked:
        # At least the closing one, counting every byte sent, before 226.
        assert perf and f"Stripe Bytes Transferred: {len(payload)}" in perf[-1]
    else:
        assert perf == []
    got = b"".join(e.data for e in sorted((e for e in events if isinstance(e, Data)), key=lambda e: e.offset))
    assert got == payload


def test_stream_retr_after_rest_sends_the_exact_tail(serve, root):
    payload = os.urandom(5_000_001)
    (root / "s.bin").write_bytes(payload)
    srv = serve("--root", str(root), "--anonymous")
    c = Client(srv.port)
    c.login()
    assert c.cmd("TYPE I")[0] == 200
    hp = c.pasv()
    assert c.cmd("REST 1234567")[0] == 350
    c.raw(b"RETR /s.bin\r\n")
    s = data_conn(hp)
    got = bytearray()
    while chunk := s.recv(1 << 20):
        got += chunk
    s.close()
    assert c.until_final()[-1][0] == 226
    assert bytes(got) == payload[1234567:]


def test_cached_data_connection_carries_the_next_transfer(serve, root):
    """EOD without CLOSE: the connection stays open and the next STOR needs no PASV."""
    srv = serve("--root", str(root), "--anonymous-write")
    c = Client(srv.port)
    c.login()
    hp = stor_mode_e(c, "/one.bin", 5)
    d = data_conn(hp)
    d.sendall(encode_block(0, b"first") + encode_eof_eod(1, close=False))
    assert c.until_final()[-1][0] == 226
    for name, body in (("/two.bin", b"second"), ("/three.bin", b"third!")):
        assert c.cmd(f"ALLO {len(body)}")[0] == 200
        c.raw(f"STOR {name}\r\n".encode())
        d.sendall(encode_block(0, body) + encode_eof_eod(1, close=False))
        replies = c.until_final()
        assert replies[-1][0] == 226, replies
    assert [(root / n).read_bytes() for n in ("one.bin", "two.bin", "three.bin")] == [b"first", b"second", b"third!"]
    # A CLOSE ends the caching: the next transfer needs a new data setup.
    assert c.cmd("ALLO 1")[0] == 200
    c.raw(b"STOR /four.bin\r\n")
    d.sendall(encode_block(0, b"4") + encode_eof_eod(1, close=True))
    assert c.until_final()[-1][0] == 226
    d.close()
    assert c.cmd("ALLO 1")[0] == 200
    code, text = c.cmd("STOR /five.bin")
    assert code == 501 and "no data connection" in text
    c.close()


def test_cached_connection_dropped_by_the_client_and_a_new_one_opened(serve, root):
    srv = serve("--root", str(root), "--anonymous-write")
    c = Client(srv.port)
    c.login()
    hp = stor_mode_e(c, "/a.bin", 3)
    d = data_conn(hp)
    d.sendall(encode_block(0, b"aaa") + encode_eof_eod(1, close=False))
    assert c.until_final()[-1][0] == 226
    d.close()  # the client gives the cached connection up
    assert c.cmd("ALLO 3")[0] == 200
    c.raw(b"STOR /b.bin\r\n")
    e = data_conn(hp)  # the listener stays open while connections are cached
    e.sendall(encode_block(0, b"bbb") + encode_eof_eod(1))
    assert c.until_final()[-1][0] == 226
    assert (root / "b.bin").read_bytes() == b"bbb"
    c.close()


def test_cksm_crc32c_whole_and_range(serve, root):
    from transfercore import checksums

    payload = os.urandom(100_000)
    (root / "k.bin").write_bytes(payload)
    srv = serve("--root", str(root), "--anonymous")
    c = Client(srv.port)
    c.login()
    for offset, length, part in ((0, -1, payload), (10, 500, payload[10:510])):
        h = checksums.new("crc32c")
        h.update(part)
        assert c.cmd(f"CKSM CRC32C {offset} {length} /k.bin") == (213, f"213 {h.hexdigest()}")
    c.close()


def test_retr_parallelism_is_capped_at_the_data_connection_limit(serve, root):
    payload = os.urandom(3_000_000)
    (root / "p.bin").write_bytes(payload)
    srv = serve("--root", str(root), "--anonymous")
    c = Client(srv.port)
    c.login()
    assert c.cmd("TYPE I")[0] == 200 and c.cmd("MODE E")[0] == 200
    assert c.cmd("OPTS RETR Parallelism=64,64,64;")[0] == 200
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(128)
    port = lst.getsockname()[1]
    assert c.cmd(f"PORT 127,0,0,1,{port >> 8},{port & 255}")[0] == 200
    c.raw(b"RETR /p.bin\r\n")
    lst.settimeout(20)
    conns = [lst.accept()[0] for _ in range(32)]
    lst.settimeout(1)
    with pytest.raises(TimeoutError):
        conns.append(lst.accept()[0])  # no 33rd
    got: dict[int, bytes] = {}
    eof = None
    for s in conns:
        s.settimeout(20)
        dec = ModeEDecoder()
        while not dec.done:
            chunk = s.recv(1 << 20)
            assert chunk, "closed before EOD"
            for ev in dec.receive(chunk):
                if isinstance(ev, Data):
                    got[ev.offset] = ev.data
                elif isinstance(ev, EndOfFile):
                    eof = ev.eod_count
    assert c.until_final()[-1][0] == 226
    assert len(conns) == 32 and eof == 32
    assert b"".join(got[k] for k in sorted(got)) == payload
    for s in conns:
        s.close()
    lst.close()
    c.close()
