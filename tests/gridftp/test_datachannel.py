import contextlib
import socket
import threading

import pytest

from transfercore.errors import TransferAborted, TransferCoreError
from transfercore.gridftp.datachannel import (
    RECEIVE_BLOCK,
    ModeEReceiver,
    ModeESender,
    PassiveListener,
    Progress,
    block_plan,
    receive_stream,
    send_stream,
)
from transfercore.gridftp.errors import RemoteProtocolError
from transfercore.gridftp.modee import encode_block, encode_eod, encode_eof_eod
from transfercore.ranges import RangeSet


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
    recv = ModeEReceiver(w, 0, 1 << 20)
    rs = [threading.Thread(target=recv.run, args=(p[1], Progress(), stop)) for p in pairs]
    for t in ts + rs:
        t.start()
    for t in ts + rs:
        t.join(10)
    assert recv.tracker.complete and recv.finished.is_set()
    assert w.joined() == data
    assert recv.received() == RangeSet.span(0, len(data))


def test_mode_e_cut_mid_block_is_an_error():
    a, b = socket.socketpair()
    a.sendall(encode_block(0, b"x" * 100)[:50])
    a.close()
    recv = ModeEReceiver(MemWriter(), 0, 1 << 20)
    with pytest.raises(RemoteProtocolError, match="middle of a block"):
        recv.run(b, Progress(), threading.Event())


def test_mode_e_close_without_eod_is_an_error():
    a, b = socket.socketpair()
    a.sendall(encode_block(0, b"x" * 10))
    a.close()
    with pytest.raises(RemoteProtocolError, match="before its EOD"):
        ModeEReceiver(MemWriter(), 0, 1 << 20).run(b, Progress(), threading.Event())


def test_shift_applies_to_offsets():
    a, b = socket.socketpair()
    a.sendall(encode_block(0, b"abc") + encode_eof_eod(1))
    w = MemWriter()
    r = ModeEReceiver(w, 1000, 1 << 20)
    r.run(b, Progress(), threading.Event())
    assert w.parts == {1000: b"abc"} and r.tracker.complete


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
    r = ModeEReceiver(MemWriter(), 0, 1 << 20)
    r.run(b, Progress(), threading.Event())
    assert not r.tracker.complete


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
