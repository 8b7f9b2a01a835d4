import contextlib
import socket
import threading

import pytest

from transfercore.blockpool import BlockPool
from transfercore.errors import TransferAborted, TransferCoreError
from transfercore.gridftp.datachannel import (
    RECEIVE_BLOCK,
    ModeESender,
    PassiveListener,
    Progress,
    block_plan,
    receive_mode_e,
    receive_stream,
    send_stream,
)
from transfercore.gridftp.errors import RemoteProtocolError
from transfercore.gridftp.modee import encode_block, encode_eod, encode_eof_eod
from transfercore.gridftp.upload import UploadTracker
from transfercore.ranges import RangeSet


def run_e(sock, writer, shift=0, piece=1 << 20, tracker=None):
    tracker = tracker or UploadTracker()
    cached = receive_mode_e(
        sock, writer.write, tracker, Progress(), threading.Event(), max_block=1 << 20, piece=piece, shift=shift
    )
    return tracker, cached


class MemWriter:
    def __init__(self):
        self.parts = {}
        self.lock = threading.Lock()

    def write(self, offset, data):
        with self.lock:
            self.parts[offset] = bytes(data)

    def joined(self):
        out = bytearray()
        for off in sorted(self.parts):
            assert off == len(out)
            out += self.parts[off]
        return bytes(out)


class MemReader:
    def __init__(self, data):
        self.data = data
        self.size = len(data)

    def read(self, offset, length):
        return self.data[offset : offset + length]


def test_block_plan():
    assert list(block_plan(RangeSet.of((0, 5), (10, 12)), 2)) == [(0, 2), (2, 2), (4, 1), (10, 2)]


def test_stream_roundtrip_over_socketpair():
    data = bytes(range(256)) * 40000
    a, b = socket.socketpair()
    w = MemWriter()
    stop = threading.Event()
    t = threading.Thread(
        target=lambda: (send_stream(a, MemReader(data), 100, len(data), Progress(), stop), a.close())
    )
    t.start()
    end = receive_stream(b, w, 100, Progress(), stop)
    t.join()
    assert end == len(data)
    assert b"".join(w.parts[k] for k in sorted(w.parts)) == data[100:]


def test_mode_e_roundtrip_two_connections():
    data = bytes(range(251)) * 9000
    pairs = [socket.socketpair() for _ in range(2)]
    sender = ModeESender(MemReader(data), RangeSet.span(0, len(data)), 100_000)
    stop = threading.Event()
    ts = [
        threading.Thread(target=sender.run, args=(p[0], Progress(), stop, 2 if i == 0 else None))
        for i, p in enumerate(pairs)
    ]
    w = MemWriter()
    tracker = UploadTracker()
    # Small pieces: a block arrives in several deliveries.
    rs = [threading.Thread(target=run_e, args=(p[1], w, 0, 30_000, tracker)) for p in pairs]
    for t in ts + rs:
        t.start()
    for t in ts + rs:
        t.join(10)
    assert tracker.complete
    assert w.joined() == data
    assert tracker.received() == RangeSet.span(0, len(data))


def test_mode_e_cut_mid_block_is_an_error():
    a, b = socket.socketpair()
    a.sendall(encode_block(0, b"x" * 100)[:50])
    a.close()
    with pytest.raises(RemoteProtocolError, match="middle of a block"):
        run_e(b, MemWriter())


def test_mode_e_close_without_eod_is_an_error():
    a, b = socket.socketpair()
    a.sendall(encode_block(0, b"x" * 10))
    a.close()
    with pytest.raises(RemoteProtocolError, match="before its EOD"):
        run_e(b, MemWriter())


def test_shift_applies_to_offsets():
    a, b = socket.socketpair()
    a.sendall(encode_block(0, b"abc") + encode_eof_eod(1))
    w = MemWriter()
    tracker, cached = run_e(b, w, shift=1000)
    assert w.parts == {1000: b"abc"} and tracker.complete and not cached


def test_listener_accept_and_abort():
    lst = PassiveListener("127.0.0.1", None)
    c = socket.create_connection(("127.0.0.1", lst.port))
    s = lst.accept(5)
    s.close()
    c.close()
    stop = threading.Event()
    stop.set()
    with pytest.raises(TransferAborted):
        lst.accept(5, stop)
    lst.close()


def test_eod_without_eof_leaves_tracker_incomplete():
    a, b = socket.socketpair()
    a.sendall(encode_block(0, b"abc") + encode_eod())
    tracker, _ = run_e(b, MemWriter())
    assert not tracker.complete


def test_eod_without_close_keeps_the_connection_for_the_next_transfer():
    a, b = socket.socketpair()
    a.sendall(encode_block(0, b"abc") + encode_eof_eod(1, close=False) + encode_block(0, b"next") + encode_eod())
    w = MemWriter()
    tracker, cached = run_e(b, w)
    assert cached and tracker.complete and w.parts == {0: b"abc"}
    # The next transfer reads on from the same connection, nothing of it was consumed.
    w2 = MemWriter()
    tracker2, cached2 = run_e(b, w2)
    assert w2.parts == {0: b"next"} and not cached2 and not tracker2.complete


def test_a_cached_connection_closed_between_transfers_is_not_an_error():
    a, b = socket.socketpair()
    a.close()
    tracker, cached = run_e(b, MemWriter())
    assert not cached and not tracker.complete


def test_stream_receive_stops_at_the_first_write_error():
    class Failing(MemWriter):
        def write(self, offset, data):
            if offset:
                raise TransferCoreError("no space left")
            super().write(offset, data)

    def send_until_refused():
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            a.sendall(b"y" * (RECEIVE_BLOCK * 3))
        a.close()

    a, b = socket.socketpair()
    t = threading.Thread(target=send_until_refused)
    t.start()
    w = Failing()
    with pytest.raises(TransferCoreError, match="no space left"):
        receive_stream(b, w, 0, Progress(), threading.Event())
    b.close()
    t.join(10)
    assert w.parts == {0: b"y" * RECEIVE_BLOCK}


def test_with_a_pool_large_pieces_are_given_away_in_buffers_of_their_own_and_small_ones_lent():
    KiB = 1024
    blocks = [(0, b"a" * 100 * KiB), (100 * KiB, b"b" * 10 * KiB), (110 * KiB, b"c" * 300 * KiB)]
    a, b = socket.socketpair()
    sender = threading.Thread(
        target=lambda: a.sendall(b"".join(encode_block(o, d) for o, d in blocks) + encode_eof_eod(1))
    )
    sender.start()
    got = []  # (offset, bytes, given away, the buffer)

    def deliver(offset, view, release=None):
        got.append((offset, bytes(view), release is not None, view.obj))
        if release is not None:
            held.append(release)

    held = []
    pool = BlockPool(keep=1 << 20)
    tracker = UploadTracker()
    receive_mode_e(
        b, deliver, tracker, Progress(), threading.Event(), max_block=1 << 20, piece=200 * KiB, pool=pool
    )
    sender.join(10)
    # 100 KiB given, 10 KiB lent (below MIN_BLOCK), 300 KiB in pieces of at most 200 KiB, each given
    assert [(o, len(d), g) for o, d, g, _ in got] == [
        (0, 100 * KiB, True), (100 * KiB, 10 * KiB, False), (110 * KiB, 200 * KiB, True), (310 * KiB, 100 * KiB, True)
    ]
    assert b"".join(d for _, d, _, _ in got) == b"".join(d for _, d in blocks)
    given = [buf for _, _, g, buf in got if g]
    # none released yet: each given piece has a buffer of its own, none reused under its holder
    assert len({id(buf) for buf in given}) == 3 and pool.made == 3
    assert tracker.complete and tracker.received() == RangeSet.span(0, 410 * KiB)
    for release in held:
        release()
    assert pool.free_bytes == 128 * KiB + 256 * KiB + 128 * KiB  # each in the size class of its piece
