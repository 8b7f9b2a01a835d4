from __future__ import annotations

import pytest

from transfercore.gridftp.errors import RemoteProtocolError
from transfercore.gridftp.gsi.tokens import adat_reply, decode_base64, protected_reply


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
