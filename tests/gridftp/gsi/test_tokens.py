from __future__ import annotations

import pytest

from transfercore.gridftp.errors import RemoteProtocolError
from transfercore.gridftp.gsi.tokens import MAX_TOKEN, TokenReader, adat_reply, decode_base64, protected_reply


def test_adat_replies() -> None:
    assert adat_reply(b"\x16\x03", complete=False) == (335, "ADAT=FgM=")
    assert adat_reply(b"\x17", complete=True) == (235, "ADAT=Fw==")
    assert adat_reply(b"", complete=True) == (235, "GSSAPI Authentication successful.")
    assert protected_reply(b"\x17\x03\x03") == b"632 FwMD\r\n"
    assert protected_reply(b"\x17", confidential=False) == b"631 Fw==\r\n"


@pytest.mark.parametrize("arg", ["", "   ", "not base64!", "QUJ"])
def test_bad_base64_is_a_protocol_error(arg: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_base64(arg)


def test_record_and_length_framing_split_across_feeds() -> None:
    record1 = b"\x17\x03\x03\x00\x03abc"
    record2 = b"\x16\x03\x03\x00\x00"
    framed = b"\x00\x00\x00\x02hi"
    stream = record1 + framed + record2
    reader = TokenReader()
    out = []
    for i in range(len(stream)):
        out += reader.feed(stream[i : i + 1])
    assert out == [record1, b"hi", record2]
    assert reader.buffered == 0


def test_oversized_length_frame_is_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="more than"):
        TokenReader().feed((MAX_TOKEN + 1).to_bytes(4, "big") + b"x")
