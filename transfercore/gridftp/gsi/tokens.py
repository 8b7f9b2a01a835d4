"""Framing of GSI tokens: base64 in FTP commands and replies, records on data channels.

Control channel (RFC 2228 with the GSI mechanism): ``ADAT <base64>`` carries
handshake tokens, answered ``335 ADAT=<base64>`` while more are needed and
``235 ADAT=<base64>`` (or ``235`` alone) when the context is complete; then
every command arrives as ``MIC <base64>`` or ``ENC <base64>`` of a wrapped
line and every reply leaves as ``631``/``632 <base64>`` of the wrapped reply.

Data channels carry the tokens raw (see :mod:`.datasock`).
"""

from __future__ import annotations

import base64
import binascii

from ..errors import RemoteProtocolError

#: a bound on one token, far above a TLS record (16 KiB + overhead) or a delegated chain
MAX_TOKEN = 1 << 20


def decode_base64(arg: str, *, what: str = "ADAT") -> bytes:
    try:
        data = base64.b64decode(arg.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RemoteProtocolError(f"the {what} argument is not base64") from exc
    if not data:
        raise RemoteProtocolError(f"the {what} argument is empty")
    if len(data) > MAX_TOKEN:
        raise RemoteProtocolError(f"the {what} token is larger than {MAX_TOKEN} bytes")
    return data


def encode_base64(token: bytes) -> str:
    return base64.b64encode(token).decode("ascii")


def adat_reply(token: bytes, *, complete: bool) -> tuple[int, str]:
    """The reply to an ``ADAT`` command that produced ``token``."""
    if complete:
        return (235, f"ADAT={encode_base64(token)}") if token else (235, "GSSAPI Authentication successful.")
    return 335, f"ADAT={encode_base64(token)}"


def protected_reply(wrapped: bytes, *, confidential: bool = True) -> bytes:
    """A wrapped reply as its ``631`` (integrity) or ``632`` (confidential) line."""
    code = 632 if confidential else 631
    return f"{code} {encode_base64(wrapped)}\r\n".encode("ascii")
