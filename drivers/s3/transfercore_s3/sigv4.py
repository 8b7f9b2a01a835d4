"""AWS Signature Version 4 for one S3 request, sans I/O.

The headers a request needs to be accepted (``Authorization``, ``x-amz-date``,
``x-amz-content-sha256`` and the session token), computed from the request's
parts and the credentials alone: no connection, no clock (the caller gives
the time), so the result can be checked against the published examples.
S3 signs the path as sent: each segment percent-encoded once, never
normalised.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import datetime
from urllib.parse import quote

import attrs

ALGORITHM = "AWS4-HMAC-SHA256"
#: ``x-amz-content-sha256`` of a request without a body.
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@attrs.frozen(repr=False)
class Credentials:
    """One set of S3 credentials (never printed: no repr of the secret)."""

    access_key: str
    secret_key: str
    token: str | None = None


def encode_path(key_path: str) -> str:
    """A path as S3 expects it on the request line and in the signature."""
    return quote(key_path, safe="/~")


def _encode(value: str) -> str:
    return quote(value, safe="-_.~")


def canonical_query(query: Sequence[tuple[str, str]]) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted((_encode(k), _encode(v)) for k, v in query))


def signing_key(secret_key: str, day: str, region: str, service: str = "s3") -> bytes:
    key = hmac.new(f"AWS4{secret_key}".encode(), day.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign(
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    payload_sha256: str,
    credentials: Credentials,
    region: str,
    now: datetime,
    key: bytes | None = None,
) -> dict[str, str]:
    """The headers to add to a request of ``headers`` (``host`` among them)
    whose already encoded path is ``path``.  Every header given is signed;
    ``key``, the :func:`signing_key` of the day, may be passed to spare its
    four HMACs."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    added = {"x-amz-date": stamp, "x-amz-content-sha256": payload_sha256}
    if credentials.token:
        added["x-amz-security-token"] = credentials.token
    signed = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()} | added
    names = sorted(signed)
    canonical = "\n".join(
        [method, path, canonical_query(query), *(f"{n}:{signed[n]}" for n in names), "", ";".join(names),
         payload_sha256]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = f"{ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = key if key is not None else signing_key(credentials.secret_key, day, region)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    added["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, SignedHeaders={';'.join(names)}, "
        f"Signature={signature}"
    )
    return added
