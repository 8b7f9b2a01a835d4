"""The few requests of a tree copy, signed here and sent over pooled connections.

A tree of small files costs one ``PutObject`` per file; through botocore
each costs more CPU on the client (its request pipeline of events, models
and checks) than the store spends on it, and the S3 model must be loaded
before the first one.  ``HeadBucket``, ``PutObject``, ``HeadObject`` and ``ListObjectsV2`` (what a
tree copy asks) are simple requests: here they are signed (:mod:`.sigv4`) and sent over a pool of
``http.client`` connections, one at a time per connection.  What a PUT
promises does not change: the body goes with its CRC32C or Content-MD5, the
store refuses a body that does not match, and the caller reads the checksum
the store answered with.

Failures are the project's errors with the same words as botocore's
(:func:`.errors.from_code`); a dropped connection is retried on a new one.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote_plus, urlsplit
from xml.etree import ElementTree

from transfercore.errors import StorageError

from .errors import from_code, unreachable
from .sigv4 import EMPTY_SHA256, Credentials, canonical_query, encode_path, sign, signing_key

#: Attempts of one request (botocore's standard mode makes 3).
ATTEMPTS = 3
#: Answers worth another attempt: the store is busy or restarting.
RETRY_STATUS = frozenset({500, 502, 503, 504})
#: Idle connections kept for the next request.
KEEP = 64


class Response:
    """A finished request: status, headers (lowercase names), body."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def error(self) -> tuple[str, str]:
        """The S3 error code and message of a refused request (a body-less
        answer, as to HEAD, gives the status as the code, as botocore does)."""
        code, message = str(self.status), ""
        if self.body:
            try:
                root = ElementTree.fromstring(self.body)
            except ElementTree.ParseError:
                return code, self.body[:200].decode("utf-8", "replace")
            code = root.findtext("Code") or code
            message = root.findtext("Message") or ""
        return code, message


class LeanS3:
    """One bucket at one endpoint, for ``HeadBucket``, ``PutObject``,
    ``HeadObject`` and ``ListObjectsV2``."""

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        *,
        region: str,
        addressing: str,
        credentials: Callable[[], Credentials | None],
        ca_bundle: str | None = None,
        connect_timeout: float = 5,
        read_timeout: float = 120,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) endpoint: {endpoint!r}")
        self.endpoint, self.bucket, self.region = endpoint, bucket, region
        self._https = parts.scheme == "https"
        port = parts.port or (443 if self._https else 80)
        virtual = addressing == "virtual"
        self._connect_host = f"{bucket}.{parts.hostname}" if virtual else parts.hostname
        self._port = port
        default_port = port == (443 if self._https else 80)
        self._host = self._connect_host + ("" if default_port else f":{port}")
        base = parts.path.rstrip("/")
        #: the bucket's own path (``HeadBucket``), and the prefix of its keys
        self._bucket_path = f"{base}/" if virtual else f"{base}/{bucket}"
        self._root = f"{base}/" if virtual else f"{base}/{bucket}/"
        self._credentials = credentials
        self._context = ssl.create_default_context(cafile=ca_bundle) if self._https else None
        self._connect_timeout, self._read_timeout = connect_timeout, read_timeout
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._key: tuple[str, str, bytes] | None = None

    # -- connections ---------------------------------------------------------------

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        conn: http.client.HTTPConnection
        if self._context is not None:
            conn = http.client.HTTPSConnection(self._connect_host, self._port, timeout=self._connect_timeout,
                                               context=self._context)
        else:
            conn = http.client.HTTPConnection(self._connect_host, self._port, timeout=self._connect_timeout)
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(self._read_timeout)
        return conn, False

    def _release(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < KEEP:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # -- requests ------------------------------------------------------------------

    def _signing_key(self, credentials: Credentials, day: str) -> bytes:
        cached = self._key
        if cached is not None and cached[0] == credentials.secret_key and cached[1] == day:
            return cached[2]
        key = signing_key(credentials.secret_key, day, self.region)
        self._key = (credentials.secret_key, day, key)
        return key

    def request(
        self, method: str, key: str, what: str, *, body: bytes = b"", headers: dict[str, str] | None = None,
        payload_sha256: str = EMPTY_SHA256, query: Sequence[tuple[str, str]] = (),
    ) -> Response:
        """One request, retried on a dropped connection or a busy store; the
        answer whatever its status.  Connection failures raise the project's
        error (``what`` says what was being done)."""
        path = encode_path(self._root + key if key else self._bucket_path)
        target = path + ("?" + canonical_query(query) if query else "")
        credentials = self._credentials()
        if credentials is None:
            raise from_code("NoCredentials", "", what, self.endpoint)
        for attempt in range(ATTEMPTS):
            now = datetime.now(UTC)
            base = {"host": self._host, **(headers or {})}
            signed = sign(method, path, query, base, payload_sha256, credentials, self.region, now,
                          self._signing_key(credentials, now.strftime("%Y%m%d")))
            all_headers = {"Host": self._host, **(headers or {}), **signed, "Content-Length": str(len(body))}
            try:
                conn, reused = self._connection()
            except OSError as exc:
                if attempt + 1 < ATTEMPTS:
                    time.sleep(0.1 * 2**attempt)  # backoff before another connect, bounded by ATTEMPTS
                    continue
                raise unreachable(what, self.endpoint) from exc
            try:
                conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for name, value in all_headers.items():
                    conn.putheader(name, value)
                conn.endheaders(body or None)
                answer = conn.getresponse()
                data = answer.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if attempt + 1 < ATTEMPTS:
                    if reused:
                        # the store closed an idle connection (it does after a
                        # quiet while): the others idle as long are closed too,
                        # so the next attempt takes a new one
                        self.close()
                    else:
                        time.sleep(0.1 * 2**attempt)  # a fresh connection failed: back off first
                    continue
                raise unreachable(what, self.endpoint) from exc
            response = Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, data)
            if answer.will_close:
                conn.close()
            else:
                self._release(conn)
            if response.status in RETRY_STATUS and attempt + 1 < ATTEMPTS:
                time.sleep(0.1 * 2**attempt)  # backoff of a busy store, bounded by ATTEMPTS
                continue
            return response
        raise StorageError(f"{what}: no answer from {self.endpoint}")  # not reached: the last attempt returns

    def head_bucket(self, what: str) -> Response:
        return self.request("HEAD", "", what)

    def put_object(self, key: str, data: bytes, digest: dict[str, str], payload_sha256: str, what: str) -> dict[str, Any]:
        """One PUT of ``data`` with its integrity header ``digest``; the store's
        answer in botocore's words (``ETag``, ``ChecksumCRC32C``, ``VersionId``)
        once it answered 200, else the project's error."""
        response = self.request("PUT", key, what, body=data, headers=digest, payload_sha256=payload_sha256)
        if response.status != 200:
            code, message = response.error()
            raise from_code(code, message, what, self.endpoint)
        out: dict[str, Any] = {"ETag": response.headers.get("etag", "")}
        for header, name in (("x-amz-checksum-crc32c", "ChecksumCRC32C"), ("x-amz-version-id", "VersionId")):
            if header in response.headers:
                out[name] = response.headers[header]
        return out

    def head_object(self, key: str, what: str, *, checksums: bool = False) -> dict[str, Any] | None:
        """The object's facts in botocore's words (``ContentLength``, ``ETag``,
        ``LastModified``, ``VersionId``, with ``checksums`` the
        ``ChecksumCRC32C`` and ``ChecksumType`` the store keeps), or None when
        there is no such object."""
        response = self.request("HEAD", key, what, headers={"x-amz-checksum-mode": "ENABLED"} if checksums else None)
        if response.status == 404:
            return None
        if response.status != 200:
            raise from_code(*response.error(), what, self.endpoint)
        h = response.headers
        out: dict[str, Any] = {"ContentLength": int(h.get("content-length", "0")), "ETag": h.get("etag", "")}
        if "last-modified" in h:
            out["LastModified"] = parsedate_to_datetime(h["last-modified"])
        for header, name in (("x-amz-version-id", "VersionId"), ("x-amz-checksum-crc32c", "ChecksumCRC32C"),
                             ("x-amz-checksum-type", "ChecksumType")):
            if header in h:
                out[name] = h[header]
        return out

    def list_page(self, query: Sequence[tuple[str, str]], what: str) -> dict[str, Any]:
        """One ``ListObjectsV2`` page in botocore's words (``Contents`` with
        ``Key``, ``Size``, ``ETag``, ``LastModified``; ``CommonPrefixes``;
        ``IsTruncated``, ``NextContinuationToken``).  Names come URL-encoded
        (XML cannot carry every byte a key may hold) and are decoded here."""
        response = self.request("GET", "", what, query=[("list-type", "2"), ("encoding-type", "url"), *query])
        if response.status != 200:
            raise from_code(*response.error(), what, self.endpoint)
        try:
            root = ElementTree.fromstring(response.body)
        except ElementTree.ParseError as exc:
            raise StorageError(f"{what}: {self.endpoint} answered a listing that is not XML") from exc
        page: dict[str, Any] = {"Contents": [], "CommonPrefixes": [], "IsTruncated": False}
        for node in root:
            tag = node.tag.rpartition("}")[2]
            if tag == "Contents":
                item = {child.tag.rpartition("}")[2]: child.text or "" for child in node}
                page["Contents"].append({
                    "Key": unquote_plus(item["Key"]),
                    "Size": int(item.get("Size", "0")),
                    "ETag": item.get("ETag", ""),
                    "LastModified": datetime.fromisoformat(item["LastModified"]) if item.get("LastModified") else None,
                })
            elif tag == "CommonPrefixes":
                for child in node:
                    if child.tag.rpartition("}")[2] == "Prefix":
                        page["CommonPrefixes"].append({"Prefix": unquote_plus(child.text or "")})
            elif tag == "IsTruncated":
                page["IsTruncated"] = (node.text or "").strip() == "true"
            elif tag == "NextContinuationToken":
                page["NextContinuationToken"] = node.text or ""
        return page
