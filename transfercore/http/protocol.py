"""tus 1.0.0 and the IETF resumable-upload draft (interop version 8), without I/O.

The ASGI shell (:mod:`.app`) turns each request into a :class:`Request`;
:func:`decide` parses and checks it and answers with either a final
:class:`Reply` (an error, OPTIONS) or an action for the shell to carry out
(:class:`Create`, :class:`Append`, :class:`Query`, :class:`Cancel`).  Once the
shell has loaded the upload's record, moved the body into the writer and
learned the durable offset, the ``reply_*`` functions build the answer.

Both protocols share one upload resource, ``/uploads/<id>``:

* tus: ``POST /files/`` (``Upload-Metadata: filename <base64>``) creates it,
  ``HEAD`` reads the offset, ``PATCH`` (``application/offset+octet-stream``)
  appends, ``DELETE`` terminates; every request carries ``Tus-Resumable``.
* the draft: any ``POST``/``PUT`` to ``/files/<path>`` with ``Upload-Complete``
  creates it, ``HEAD`` reads the offset, ``PATCH``
  (``application/partial-upload``) appends, ``DELETE`` cancels.

A request is tus when it carries ``Tus-Resumable``, the draft otherwise.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import json
import re
from collections.abc import Mapping

import attrs

from ..errors import PathEscapesRoot
from ..gridftp.paths import resolve

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,checksum,expiration"
INTEROP_VERSION = "8"
PROBLEM = "https://iana.org/assignments/http-problem-types#"
TUS_CONTENT_TYPE = "application/offset+octet-stream"
PARTIAL_UPLOAD = "application/partial-upload"
FILES = "/files"
UPLOADS = "/uploads/"
#: tus ``Upload-Checksum`` algorithms -> hashlib names.
TUS_CHECKSUMS = {"sha1": "sha1", "sha256": "sha256", "sha512": "sha512", "md5": "md5"}
#: RFC 9530 ``Repr-Digest`` algorithms -> hashlib names.
REPR_DIGESTS = {"sha-256": "sha256", "sha-512": "sha512"}
_MAX_INT = 999_999_999_999_999  # structured-field integers have at most 15 digits


@attrs.frozen
class Config:
    #: Largest upload accepted, in bytes.
    max_size: int = 1 << 40
    #: Seconds an unfinished upload is kept after its last activity.
    expiry: float = 24 * 3600.0
    #: Largest ``Upload-Metadata`` / ``Repr-Digest`` values accepted, in characters.
    max_metadata: int = 4096


def _pair(value: object) -> tuple[str, str] | None:
    """A digest pair as JSON gives it back (a list) or as built (a tuple)."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    return str(value[0]), str(value[1])


@attrs.frozen
class UploadRecord:
    """What the server keeps of one upload (its durable record)."""

    id: str
    #: The driver path the object is published under.
    path: str
    length: int
    owner: str
    protocol: str
    created: float
    expires: float
    #: The offset last acknowledged (durable when it was written); the storage may say less.
    offset: int = 0
    complete: bool = False
    metadata: str = ""
    #: ``Repr-Digest`` of the whole object as the client sent it: ``(algorithm, base64)``.
    digest: tuple[str, str] | None = attrs.field(default=None, converter=_pair)


@attrs.frozen
class Request:
    method: str
    path: str
    #: Lower-case names; repeated fields joined with ", ".
    headers: Mapping[str, str]

    def get(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def tus(self) -> bool:
        return "tus-resumable" in self.headers

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        return int(value) if value is not None and value.isdigit() else None


@attrs.frozen
class Reply:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@attrs.frozen
class Body:
    """The bytes a request carries and what they mean."""

    #: Where they land in the object.
    offset: int
    #: The client says this request ends the upload (draft ``Upload-Complete: ?1``;
    #: tus: always, the upload completes when the offset reaches the length).
    completes: bool
    #: tus ``Upload-Checksum`` of this request's bytes: (hashlib name, digest).
    checksum: tuple[str, bytes] | None = None


@attrs.frozen
class Create:
    path: str
    length: int
    protocol: str
    metadata: str
    digest: tuple[str, str] | None
    #: ``None``: the request has no content.
    body: Body | None
    #: Announce the upload with ``104 Upload Resumption Supported`` (:func:`reply_interim`) before
    #: its content is read, where the server can send one: a draft creation with content, from a
    #: client that said it speaks this interop version (tus clients and others may not expect a 1xx
    #: other than 100: Python's http.client, for one, takes it for the final reply).
    interim: bool = False


@attrs.frozen
class Append:
    upload_id: str
    body: Body
    #: A length the request states (checked against the record's).
    length: int | None
    digest: tuple[str, str] | None


@attrs.frozen
class Query:
    upload_id: str


@attrs.frozen
class Cancel:
    upload_id: str


Decision = Reply | Create | Append | Query | Cancel


# -- replies -------------------------------------------------------------------------


def _tus(headers: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return (("Tus-Resumable", TUS_VERSION), *headers)


def problem(
    status: int, kind: str, detail: str, *, tus: bool = False, headers: tuple[tuple[str, str], ...] = ()
) -> Reply:
    """An RFC 9457 problem-details reply; ``kind`` is an IANA problem type or a short slug."""
    body = {"type": kind if kind.startswith("https:") else "about:blank", "title": _TITLES.get(status, "Error"),
            "status": status, "detail": detail}
    if not kind.startswith("https:"):
        body["code"] = kind
    all_headers = [("Content-Type", "application/problem+json"), *headers]
    if tus:
        all_headers.insert(0, ("Tus-Resumable", TUS_VERSION))
    return Reply(status, tuple(all_headers), json.dumps(body).encode())


_TITLES = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict", 410: "Gone", 411: "Length Required", 412: "Precondition Failed",
    413: "Content Too Large", 415: "Unsupported Media Type", 423: "Locked", 429: "Too Many Requests",
    460: "Checksum Mismatch", 500: "Internal Server Error", 503: "Service Unavailable",
}


def upload_limit(config: Config, record: UploadRecord | None = None, now: float | None = None) -> str:
    limit = f"max-size={config.max_size}"
    if record is not None and now is not None and not record.complete:
        limit += f", max-age={max(0, int(record.expires - now))}"
    return limit


def _expires(record: UploadRecord) -> str:
    return email.utils.formatdate(record.expires, usegmt=True)


def reply_options(config: Config) -> Reply:
    return Reply(204, _tus([
        ("Tus-Version", TUS_VERSION),
        ("Tus-Extension", TUS_EXTENSIONS),
        ("Tus-Max-Size", str(config.max_size)),
        ("Tus-Checksum-Algorithm", ",".join(TUS_CHECKSUMS)),
        ("Accept-Patch", PARTIAL_UPLOAD),
        ("Upload-Limit", upload_limit(config)),
        ("Upload-Draft-Interop-Version", INTEROP_VERSION),
    ]))


def location(record: UploadRecord) -> str:
    return f"{UPLOADS}{record.id}"


def reply_interim(config: Config, record: UploadRecord) -> Reply:
    """The draft's ``104 Upload Resumption Supported`` for a creation request."""
    return Reply(104, (("Location", location(record)), ("Upload-Limit", upload_limit(config)),
                       ("Upload-Draft-Interop-Version", INTEROP_VERSION)))


def _done_body(record: UploadRecord) -> bytes:
    return json.dumps({"path": record.path, "size": record.length}).encode()


def reply_created(config: Config, record: UploadRecord, offset: int, now: float) -> Reply:
    """After a creation request whose content (if any) was all processed."""
    if record.protocol == "tus":
        headers = [("Location", location(record)), ("Upload-Offset", str(offset))]
        if not record.complete:
            headers.append(("Upload-Expires", _expires(record)))
        return Reply(201, _tus(headers))
    ietf = [("Location", location(record)), ("Upload-Offset", str(offset)),
            ("Upload-Limit", upload_limit(config, record, now))]
    if record.complete:
        return Reply(201, (*ietf, ("Upload-Complete", "?1"), ("Content-Type", "application/json")),
                     _done_body(record))
    return Reply(201, (*ietf, ("Upload-Complete", "?0")))


def reply_appended(config: Config, record: UploadRecord, offset: int, now: float, *, tus: bool) -> Reply:
    """After an append whose content was all processed (in the protocol of the append)."""
    if tus:
        headers = [("Upload-Offset", str(offset))]
        if not record.complete:
            headers.append(("Upload-Expires", _expires(record)))
        return Reply(204, _tus(headers))
    if record.complete:
        return Reply(200, (("Upload-Complete", "?1"), ("Upload-Offset", str(offset)),
                           ("Content-Type", "application/json")), _done_body(record))
    return Reply(204, (("Upload-Complete", "?0"), ("Upload-Offset", str(offset))))


def reply_head(config: Config, record: UploadRecord, offset: int, now: float, *, tus: bool) -> Reply:
    if tus:
        headers = [("Upload-Offset", str(offset)), ("Upload-Length", str(record.length)),
                   ("Cache-Control", "no-store")]
        if record.metadata:
            headers.append(("Upload-Metadata", record.metadata))
        if not record.complete:
            headers.append(("Upload-Expires", _expires(record)))
        return Reply(200, _tus(headers))
    return Reply(204, (
        ("Upload-Offset", str(offset)),
        ("Upload-Complete", "?1" if record.complete else "?0"),
        ("Upload-Length", str(record.length)),
        ("Upload-Limit", upload_limit(config, record, now)),
        ("Cache-Control", "no-store"),
    ))


def reply_cancelled(*, tus: bool) -> Reply:
    return Reply(204, _tus([]) if tus else ())


def reply_mismatch(record: UploadRecord, offset: int, sent: int, *, tus: bool) -> Reply:
    detail = f"the upload's offset is {offset}, the request says {sent}: send the bytes from {offset} on"
    headers = (("Upload-Offset", str(offset)), ("Upload-Complete", "?1" if record.complete else "?0"))
    return problem(409, PROBLEM + "mismatching-upload-offset", detail, tus=tus, headers=headers)


def reply_too_long(record: UploadRecord, offset: int, *, tus: bool) -> Reply:
    return problem(
        413 if tus else 400, PROBLEM + "inconsistent-upload-length",
        f"the request carries bytes past the upload's length {record.length}; "
        f"{offset} bytes are stored, nothing is published",
        tus=tus, headers=(("Upload-Offset", str(offset)),),
    )


def reply_body_timeout(seconds: float, offset: int, *, tus: bool) -> Reply:
    return problem(408, "body-timeout", f"no byte of the request body arrived for {seconds:g} s; the upload "
                   f"holds {offset} bytes: send the rest from there", tus=tus,
                   headers=(("Upload-Offset", str(offset)),))


def reply_checksum_mismatch(offset: int) -> Reply:
    return problem(460, "checksum-mismatch",
                   f"the request's bytes do not match its Upload-Checksum; they were dropped, "
                   f"send them again from offset {offset}", tus=True, headers=(("Upload-Offset", str(offset)),))


def reply_digest_mismatch(record: UploadRecord, *, tus: bool) -> Reply:
    algorithm = record.digest[0] if record.digest else "?"
    return problem(400, "digest-mismatch",
                   f"the uploaded object does not match its Repr-Digest {algorithm}; it was not published "
                   "and the upload is cancelled: upload it again", tus=tus,
                   headers=(("Upload-Complete", "?0"),))


def reply_not_found(*, tus: bool) -> Reply:
    return problem(404, "no-such-upload", "no such upload (it may have expired or been cancelled)", tus=tus)


def reply_completed(record: UploadRecord, *, tus: bool) -> Reply:
    return problem(410 if not tus else 403, PROBLEM + "completed-upload",
                   f"the upload is complete ({record.length} bytes, published); nothing more can be appended",
                   tus=tus, headers=(("Upload-Complete", "?1"), ("Upload-Offset", str(record.length))))


# -- parsing -------------------------------------------------------------------------


class _Bad(Exception):
    def __init__(self, reply: Reply) -> None:
        self.reply = reply


def _integer(req: Request, name: str, *, structured: bool) -> int | None:
    value = req.get(name)
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit() or len(text) > 15 or (structured and text != str(int(text))):
        raise _Bad(problem(400, "bad-header", f"{name} {value[:40]!r} is not a non-negative integer "
                           "of at most 15 digits", tus=req.tus))
    return int(text)


def _boolean(req: Request, name: str) -> bool | None:
    value = req.get(name)
    if value is None:
        return None
    text = value.strip()
    if text not in ("?0", "?1"):
        raise _Bad(problem(400, "bad-header", f"{name} must be ?0 or ?1, not {value[:40]!r}"))
    return text == "?1"


def _tus_checksum(req: Request) -> tuple[str, bytes] | None:
    value = req.get("upload-checksum")
    if value is None:
        return None
    algorithm, _, encoded = value.strip().partition(" ")
    name = TUS_CHECKSUMS.get(algorithm.lower())
    if name is None:
        raise _Bad(problem(400, "unsupported-checksum",
                           f"Upload-Checksum algorithm {algorithm[:20]!r} is not one of {', '.join(TUS_CHECKSUMS)}",
                           tus=True))
    try:
        return name, base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise _Bad(problem(400, "bad-header", "Upload-Checksum's digest is not base64", tus=True)) from None


def _repr_digest(req: Request, config: Config) -> tuple[str, str] | None:
    """The strongest supported member of an RFC 9530 ``Repr-Digest`` dictionary."""
    value = req.get("repr-digest")
    if value is None:
        return None
    if len(value) > config.max_metadata:
        raise _Bad(problem(400, "bad-header", "Repr-Digest is too long"))
    found: dict[str, str] = {}
    for member in value.split(","):
        key, eq, item = member.strip().partition("=")
        m = re.fullmatch(r":([A-Za-z0-9+/=]*):", item.strip())
        if not eq or m is None:
            raise _Bad(problem(400, "bad-header", f"Repr-Digest member {member.strip()[:60]!r} is not key=:base64:"))
        found[key.strip().lower()] = m.group(1)
    for key in ("sha-512", "sha-256"):
        if key in found:
            try:
                base64.b64decode(found[key], validate=True)
            except (binascii.Error, ValueError):
                raise _Bad(problem(400, "bad-header", f"Repr-Digest {key} is not base64")) from None
            return key, found[key]
    raise _Bad(problem(400, "unsupported-digest",
                       f"Repr-Digest names none of {', '.join(REPR_DIGESTS)}; send one of them"))


def _filename(metadata: str) -> str | None:
    """The ``filename`` (or ``name``) of a tus ``Upload-Metadata`` value."""
    names: dict[str, str] = {}
    for pair in metadata.split(","):
        key, _, value = pair.strip().partition(" ")
        if not key:
            continue
        try:
            names[key] = base64.b64decode(value.strip(), validate=True).decode() if value else ""
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise _Bad(problem(400, "bad-metadata", f"Upload-Metadata value of {key[:40]!r} is not base64 "
                               "of UTF-8 text", tus=True)) from None
    return names.get("filename") or names.get("name")


def _destination(req: Request, name: str | None) -> str:
    """The virtual path created below ``/files``, confined to the root."""
    rest = req.path[len(FILES):]
    if name is not None:
        if "/" in name.strip("/") or name in ("", ".", ".."):
            raise _Bad(problem(403, "path-escapes-root",
                               f"filename {name[:80]!r} must be a plain name, without '/' or '..'",
                               tus=req.tus))
        rest = f"{rest.rstrip('/')}/{name}"
    try:
        path = resolve("/", rest)
    except PathEscapesRoot as exc:
        raise _Bad(problem(403, "path-escapes-root", str(exc), tus=req.tus)) from None
    if path == "/" or any(part.startswith(".") for part in path.split("/")[1:]):
        raise _Bad(problem(403, "bad-name", f"{path!r} names no file, or a hidden one (names starting with '.' "
                           "are the server's partial files)", tus=req.tus))
    return path


def decide(req: Request, config: Config) -> Decision:
    try:
        return _decide(req, config)
    except _Bad as bad:
        return bad.reply


def _decide(req: Request, config: Config) -> Decision:
    if req.method == "OPTIONS":
        return reply_options(config)
    tus = req.tus
    if tus and req.get("tus-resumable") != TUS_VERSION:
        return Reply(412, (("Tus-Resumable", TUS_VERSION), ("Tus-Version", TUS_VERSION)))
    if "upload-defer-length" in req.headers:
        return problem(400, "defer-length", "Upload-Defer-Length is not supported: send Upload-Length", tus=tus)
    if req.path.startswith(UPLOADS):
        upload_id = req.path[len(UPLOADS):]
        if req.method == "HEAD":
            return Query(upload_id)
        if req.method == "DELETE":
            return Cancel(upload_id)
        if req.method == "PATCH":
            return _append(req, config, upload_id)
        return problem(405, "method", f"{req.method} is not allowed on an upload: HEAD, PATCH, DELETE, OPTIONS",
                       tus=tus)
    if req.path == FILES or req.path.startswith(FILES + "/"):
        if req.method in ("POST", "PUT"):
            return _create(req, config)
        return problem(405, "method", f"{req.method} is not allowed here: create uploads with POST", tus=tus)
    return reply_not_found(tus=tus)


def _create(req: Request, config: Config) -> Decision:
    metadata = req.get("upload-metadata") or ""
    if len(metadata) > config.max_metadata:
        return problem(400, "bad-metadata", f"Upload-Metadata is longer than {config.max_metadata} characters",
                       tus=req.tus)
    if req.tus:
        length = _integer(req, "upload-length", structured=False)
        if length is None:
            return problem(400, "length-required", "tus creation needs Upload-Length", tus=True)
        checksum = _tus_checksum(req)
        path = _destination(req, _filename(metadata) if metadata else None)
        body = None
        if (req.content_length or 0) > 0:
            if (req.get("content-type") or "").split(";")[0].strip() != TUS_CONTENT_TYPE:
                return problem(415, "content-type", f"an upload's bytes must be sent as {TUS_CONTENT_TYPE}",
                               tus=True)
            body = Body(0, True, checksum)
        elif length == 0:
            body = Body(0, True)
        return _check_size(config, Create(path, length, "tus", metadata, None, body), tus=True)
    completes = _boolean(req, "upload-complete")
    if completes is None:
        return problem(400, "not-resumable", "send Upload-Complete (the resumable-upload draft) or "
                       "Tus-Resumable (tus) to create an upload")
    stated = _integer(req, "upload-length", structured=True)
    content = req.content_length
    implied = content if completes and content is not None else None
    if stated is not None and implied is not None and stated != implied:
        return problem(400, PROBLEM + "inconsistent-upload-length",
                       f"Upload-Length {stated} and the complete content's length {implied} differ")
    length = stated if stated is not None else implied
    if length is None:
        return problem(411, "length-required", "this server needs the length up front: send Upload-Length "
                       "(or Upload-Complete: ?1 with Content-Length)")
    if content is not None and content > length:
        return problem(400, PROBLEM + "inconsistent-upload-length",
                       f"the content ({content} bytes) is longer than Upload-Length {length}")
    path = _destination(req, None)
    body = Body(0, completes) if (content or completes or content is None) else None
    interim = body is not None and (req.get("upload-draft-interop-version") or "").strip() == INTEROP_VERSION
    return _check_size(config, Create(path, length, "ietf", "", _repr_digest(req, config), body, interim),
                       tus=False)


def _check_size(config: Config, create: Create, *, tus: bool) -> Decision:
    if create.length > config.max_size:
        return problem(413, "too-large", f"an upload may be at most {config.max_size} bytes, not {create.length}",
                       tus=tus, headers=(("Upload-Limit", upload_limit(config)),))
    return create


def _append(req: Request, config: Config, upload_id: str) -> Decision:
    content_type = (req.get("content-type") or "").split(";")[0].strip().lower()
    if req.tus:
        if content_type != TUS_CONTENT_TYPE:
            return problem(415, "content-type", f"PATCH needs Content-Type: {TUS_CONTENT_TYPE}", tus=True)
        offset = _integer(req, "upload-offset", structured=False)
        if offset is None:
            return problem(400, "offset-required", "PATCH needs Upload-Offset", tus=True)
        return Append(upload_id, Body(offset, True, _tus_checksum(req)), None, None)
    if content_type != PARTIAL_UPLOAD:
        return problem(415, "content-type", f"PATCH needs Content-Type: {PARTIAL_UPLOAD}")
    offset = _integer(req, "upload-offset", structured=True)
    completes = _boolean(req, "upload-complete")
    if offset is None or completes is None:
        return problem(400, "headers-required", "PATCH needs Upload-Offset and Upload-Complete")
    stated = _integer(req, "upload-length", structured=True)
    content = req.content_length
    implied = offset + content if completes and content is not None else None
    if stated is not None and implied is not None and stated != implied:
        return problem(400, PROBLEM + "inconsistent-upload-length",
                       f"Upload-Length {stated} and the offset plus the content's length {implied} differ")
    return Append(upload_id, Body(offset, completes), stated if stated is not None else implied,
                  _repr_digest(req, config))


# -- checks against the record ----------------------------------------------------------


def check_append(record: UploadRecord, append: Append, offset: int, *, tus: bool) -> Reply | None:
    """The reply refusing ``append`` to ``record`` whose durable offset is ``offset``, or ``None``."""
    if record.complete:
        return reply_completed(record, tus=tus)
    if append.body.offset != offset:
        return reply_mismatch(record, offset, append.body.offset, tus=tus)
    if append.length is not None and append.length != record.length:
        return problem(400, PROBLEM + "inconsistent-upload-length",
                       f"the request implies a length of {append.length}, the upload's is {record.length}",
                       tus=tus, headers=(("Upload-Offset", str(offset)),))
    if append.digest is not None and record.digest is not None and tuple(append.digest) != tuple(record.digest):
        return problem(400, "digest-changed", "Repr-Digest differs from the one sent before", tus=tus)
    return None


def offset_of(record: UploadRecord, stored: int) -> int:
    """The offset to report: acknowledged and still held by the storage (the storage is the authority)."""
    if record.complete:
        return record.length
    return min(record.offset, stored)


__all__ = [
    "Append", "Body", "Cancel", "Config", "Create", "Decision", "Query", "Reply", "Request", "UploadRecord",
    "check_append", "decide", "offset_of", "problem",
]
