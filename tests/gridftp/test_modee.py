import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transfercore.gridftp.errors import BadBlockHeader, LocalProtocolError
from transfercore.gridftp.modee import (
    HEADER_SIZE,
    Data,
    EndOfData,
    EndOfFile,
    EndTracker,
    ModeEDecoder,
    encode_block,
    encode_eod,
    encode_eof_eod,
    encode_header,
)


def decode_all(stream: bytes, chunk: int) -> tuple[list, ModeEDecoder]:
    dec = ModeEDecoder()
    events = []
    for i in range(0, len(stream), chunk):
        events.extend(dec.receive(stream[i : i + chunk]))
    return events, dec


def assemble(events) -> dict[int, bytes]:
    out = {}
    for ev in events:
        if isinstance(ev, Data):
            for i, b in enumerate(ev.data):
                assert ev.offset + i not in out
                out[ev.offset + i] = b
    return out


def test_header_is_17_bytes_big_endian():
    assert HEADER_SIZE == 17
    assert encode_header(0x48, 0, 2) == bytes.fromhex("48" + "00" * 8 + "0000000000000002")
    assert encode_block(5, b"ab") == struct.pack("!BQQ", 0, 2, 5) + b"ab"


@pytest.mark.parametrize("chunk", [1, 2, 16, 17, 18, 1000])
def test_blocks_any_chunking(chunk):
    stream = encode_block(100, b"world") + encode_block(0, b"hello") + encode_eof_eod(1)
    events, dec = decode_all(stream, chunk)
    data = assemble(events)
    assert bytes(data[i] for i in range(0, 5)) == b"hello"
    assert bytes(data[i] for i in range(100, 105)) == b"world"
    assert events[-2:] == [EndOfFile(1), EndOfData(close=True)]
    assert dec.done and dec.trailing == b""


def test_eod_on_data_block_and_trailing_bytes_kept():
    stream = encode_block(0, b"xyz", eod=True) + b"next transfer"
    events, dec = decode_all(stream, 4)
    assert events[-1] == EndOfData(close=False)
    assert assemble(events) == {0: ord("x"), 1: ord("y"), 2: ord("z")}
    assert dec.trailing == b"next transfer"


def test_in_block_reports_truncation():
    dec = ModeEDecoder()
    dec.receive(encode_block(0, b"abcdef")[:-2])
    assert dec.in_block
    dec.receive(b"ef")
    assert not dec.in_block


@pytest.mark.parametrize(
    "header,message",
    [
        (struct.pack("!BQQ", 0x01, 0, 0), "unknown bits"),
        (struct.pack("!BQQ", 0x02, 0, 0), "unknown bits"),
        (struct.pack("!BQQ", 0x20, 1, 0), "suspected errors"),
        (struct.pack("!BQQ", 0x10, 0, 0), "restart"),
        (struct.pack("!BQQ", 0x00, 2**40, 0), "exceeds the limit"),
        (struct.pack("!BQQ", 0x00, 10, 2**63 - 5), "largest offset"),
        (struct.pack("!BQQ", 0x00, 0, 2**64 - 1), "largest offset"),
        (struct.pack("!BQQ", 0x40, 5, 1), "EOF blocks carry none"),
        (struct.pack("!BQQ", 0x40, 0, 0), "announces 0 EODs"),
        (struct.pack("!BQQ", 0x40, 0, 2**40), "EODs"),
    ],
)
def test_bad_headers_rejected(header, message):
    with pytest.raises(BadBlockHeader, match=message):
        ModeEDecoder().receive(header)


def test_eof_twice_rejected():
    dec = ModeEDecoder()
    dec.receive(struct.pack("!BQQ", 0x40, 0, 2))
    with pytest.raises(BadBlockHeader, match="twice"):
        dec.receive(struct.pack("!BQQ", 0x40, 0, 2))


def test_end_tracker_counts_eods_not_sockets():
    t = EndTracker()
    t.feed(EndOfData(close=True))
    assert not t.complete  # no EOF yet
    t.feed(EndOfFile(3))
    t.feed(EndOfData(close=True))
    assert not t.complete
    t.feed(EndOfData(close=False))
    assert t.complete
    with pytest.raises(BadBlockHeader):
        t.feed(EndOfData(close=True))


def test_end_tracker_disagreeing_eof():
    t = EndTracker()
    t.feed(EndOfFile(2))
    with pytest.raises(BadBlockHeader, match="disagree"):
        t.feed(EndOfFile(3))


def test_encoder_refuses_nonsense():
    with pytest.raises(LocalProtocolError):
        encode_header(0x01, 0, 0)
    with pytest.raises(LocalProtocolError):
        encode_eof_eod(0)
    with pytest.raises(LocalProtocolError):
        encode_block(2**63 - 1, b"ab")
    assert encode_eod(close=False)[0] == 0x08


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=50))
def test_random_bytes_only_documented_errors(blob, chunk):
    dec = ModeEDecoder(max_block=1 << 20)
    try:
        for i in range(0, len(blob), chunk):
            for ev in dec.receive(blob[i : i + chunk]):
                assert isinstance(ev, (Data, EndOfData, EndOfFile))
    except BadBlockHeader:
        pass


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 10**6), st.binary(min_size=0, max_size=64)), max_size=10),
    st.integers(min_value=1, max_value=40),
)
def test_roundtrip(blocks, chunk):
    stream = b"".join(encode_block(off, data) for off, data in blocks) + encode_eof_eod(1)
    events, dec = decode_all(stream, chunk)
    got = [(e.offset, e.data) for e in events if isinstance(e, Data)]
    # every piece lies inside the block it came from
    spans = [(off, off + len(data)) for off, data in blocks]
    assert all(any(a <= off and off + len(d) <= b for a, b in spans) for off, d in got)
    assert b"".join(d for _, d in got) == b"".join(d for _, d in blocks)
    assert dec.done


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.binary(max_size=300), max_size=8).flatmap(
        lambda datas: st.permutations([(i * 1000, d) for i, d in enumerate(datas)])
    ),
    st.integers(1, 64),
    st.integers(1, 500),
)
def test_exact_reads_without_copies_decode_like_any_chunking(blocks, piece, chunk):
    """The server reads what ``wanted`` asks for and decodes it in place: same bytes, same ends."""
    stream = b"".join(encode_block(off, data) for off, data in blocks) + encode_eof_eod(1, close=False)
    chunked, _ = decode_all(stream, chunk)
    dec = ModeEDecoder()
    events, pos = [], 0
    while not dec.done:
        want = dec.wanted(piece)
        assert want > 0 and (dec.reading_header or want <= piece)
        view = memoryview(bytearray(stream[pos : pos + want]))
        pos += want
        events += [
            Data(e.offset, bytes(e.data)) if isinstance(e, Data) else e for e in dec.receive(view, copy=False)
        ]
    assert pos == len(stream)
    assert assemble(events) == assemble(chunked)
    assert events[-2:] == chunked[-2:] == [EndOfFile(1), EndOfData(close=False)]
    dec.connection_closed()  # after EOD a close is legal


def test_connection_closed_mid_block_or_before_eod():
    from transfercore.gridftp.errors import RemoteProtocolError

    dec = ModeEDecoder()
    dec.connection_closed()  # nothing of this transfer arrived: a cached connection given up
    dec.receive(encode_block(0, b"abcdef")[:20])
    with pytest.raises(RemoteProtocolError, match="middle of a block"):
        dec.connection_closed()
    dec = ModeEDecoder()
    dec.receive(encode_block(0, b"abc"))
    with pytest.raises(RemoteProtocolError, match="before its EOD"):
        dec.connection_closed()
