"""The ASGI application: moves request bodies into driver writers, nothing more.

Every decision is :mod:`.protocol`'s.  This shell streams a body into the
destination's writer in blocks (never a whole body in memory), asks the writer
for its durable marker every ``sync_bytes`` and at the end of a request, saves
the acknowledged offset in the upload's record, and publishes the object
(``Writer.complete``, with the uploads finishing at the same time:
:mod:`.publish`) only once every byte arrived and the ``Repr-Digest``, when
one was sent, matches what the storage holds.  A destination that cannot
resume a write is written through a durable spool (:mod:`.storage`).

Driver calls block, so they run on the application's own worker threads; one
upload accepts one request with a body at a time.

A server that offers the ASGI extension ``transfercore.interim_response``
(:mod:`.server`, the one ``serve-http`` runs) carries the draft's ``104 Upload
Resumption Supported`` for a creation, sent once the upload exists and before
its body is read; under any other server the application sends no 1xx.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import attrs

from ..capabilities import RestartModel
from ..contract import Driver, Writer
from ..errors import (
    InvalidWrite,
    NoSpace,
    NotFound,
    PermissionDenied,
    RestartRejected,
    TransferCoreError,
)
from ..publishing import Check, plan
from . import protocol as p
from .publish import Publisher
from .records import RecordStore, valid_id
from .server import INTERIM_RESPONSE
from .storage import DirectStorage, SpoolStorage, spool_offset

log = logging.getLogger("transfercore.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
T = TypeVar("T")
#: Who sends a request: an owner name, or ``None`` to refuse it (401).
Authorizer = Callable[[p.Request], str | None]

#: Bytes gathered from the body before one write to the storage.
WRITE_BLOCK = 1 << 20
READ_BACK_BLOCK = 4 << 20


def anyone(_request: p.Request) -> str:
    return "anonymous"


def bearer_tokens(tokens: Mapping[str, str]) -> Authorizer:
    """An authorizer accepting ``Authorization: Bearer <token>`` for the tokens given (token -> owner)."""
    items = [(token.encode(), owner) for token, owner in tokens.items()]

    def authorize(request: p.Request) -> str | None:
        scheme, _, token = (request.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        given = token.strip().encode()
        found = None
        for known, owner in items:  # every token compared: the time says nothing of which matched
            if hmac.compare_digest(known, given):
                found = owner
        return found

    return authorize


@attrs.frozen
class Limits:
    #: Requests streaming a body at once; more get 503.
    concurrent_uploads: int = 64
    #: Bytes written between two durable points (each one an fsync and a record write).
    sync_bytes: int = 16 << 20
    #: Seconds without a byte before a request body is given up (its durable part is kept).
    body_timeout: float = 60.0


class UploadApp:
    """An ASGI application serving resumable uploads into ``driver`` under ``base``."""

    def __init__(
        self,
        driver: Driver,
        records: RecordStore,
        *,
        base: str = "/",
        config: p.Config | None = None,
        limits: Limits | None = None,
        authorize: Authorizer = anyone,
        clock: Callable[[], float] = time.time,
        spool_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        caps = driver.capabilities()
        self.storage: DirectStorage | SpoolStorage
        if caps.restart is RestartModel.NONE:
            # Its writers make nothing durable before complete(): an offset could never pass 0, so the
            # bytes go to a durable spool beside the records and are stored when the upload is whole.
            self.storage = SpoolStorage(driver, spool_dir or records.directory / "spool")
        else:
            self.storage = DirectStorage(driver)
        self._read_back = caps.read_back or self.storage.spooled
        self.driver = driver
        self.records = records
        self.base = base.rstrip("/")
        self.config = config or p.Config()
        self.limits = limits or Limits()
        self.authorize = authorize
        self.clock = clock
        self._busy: set[str] = set()
        self._paths: dict[str, str] = {}  # driver path -> id of the unfinished upload writing it
        self._active = 0
        self._last_sweep = 0.0
        self._publisher = Publisher(driver, batch=not self.storage.spooled)
        # Driver calls block (fsync above all): threads of our own, enough for every upload at once, so
        # that the fsyncs of many uploads wait on the disk together rather than on asyncio's default
        # pool (cpu count + 4 threads), where 200 small uploads queue behind one another.
        self._pool = ThreadPoolExecutor(max_workers=self.limits.concurrent_uploads + 8,
                                        thread_name_prefix="transfercore-http")
        for record in records.all():
            if not record.complete:
                self._paths[record.path] = record.id

    def reconfigure(self, *, config: p.Config, limits: Limits, authorize: Authorizer) -> None:
        """New settings for the requests that come next (a reload); the worker threads stay as many."""
        self.config = config
        self.limits = attrs.evolve(limits, concurrent_uploads=self.limits.concurrent_uploads)
        self.authorize = authorize

    # -- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers", []):
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        request = p.Request(scope["method"], scope.get("path", "/"), headers)
        if INTERIM_RESPONSE not in (scope.get("extensions") or {}):
            send = _without_interim(send)
        try:
            reply = await self._handle(request, receive, send)
        except TransferCoreError as exc:
            reply = _storage_problem(exc, tus=request.tus)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            reply = p.problem(500, "internal", "the server failed; the upload's durable part is kept",
                              tus=request.tus)
        if reply is not None:
            await _send(send, reply)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._thread(self.sweep, force=True)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self._pool.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _thread(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    # -- requests -------------------------------------------------------------------------

    async def _handle(self, request: p.Request, receive: Receive, send: Send) -> p.Reply | None:
        owner = self.authorize(request) if request.method != "OPTIONS" else "-"
        if owner is None:
            return p.problem(401, "unauthorized", "send Authorization: Bearer <token>", tus=request.tus,
                             headers=(("WWW-Authenticate", "Bearer"),))
        decision = p.decide(request, self.config)
        if isinstance(decision, p.Reply):
            return decision
        if isinstance(decision, (p.Create, p.Append)) and plan(decision.digest is not None,
                                                                 self._read_back) is Check.AFTER:
            # The core would verify once published and remove a mismatch; an HTTP upload is refused
            # instead, before any byte, so its final name never shows an unverified object.
            return p.problem(400, "digest-unsupported", "this storage cannot read an object back before "
                             "publishing it, so Repr-Digest cannot be checked: send the upload without it",
                             tus=request.tus)
        if isinstance(decision, p.Create):
            return await self._create(request, decision, owner, receive, send)
        upload_id = decision.upload_id
        record = await self._thread(self._load, upload_id, owner)
        if record is None:
            return p.reply_not_found(tus=request.tus)
        if isinstance(decision, p.Query):
            offset = await self._thread(self._offset, record)
            return p.reply_head(self.config, record, offset, self.clock(), tus=request.tus)
        if upload_id in self._busy:
            return p.problem(423, "upload-busy", "another request is appending to this upload; wait for it to "
                             "end, then ask for the offset (HEAD)", tus=request.tus)
        self._busy.add(upload_id)
        try:
            if isinstance(decision, p.Cancel):
                await self._thread(self._cancel, record)
                return p.reply_cancelled(tus=request.tus)
            offset = await self._thread(self._offset, record)
            refused = p.check_append(record, decision, offset, tus=request.tus)
            if refused is not None:
                return refused
            if decision.digest is not None and record.digest is None:
                record = attrs.evolve(record, digest=decision.digest)
            return await self._receive_body(request, record, decision.body, receive, created=False)
        finally:
            self._busy.discard(upload_id)

    async def _create(
        self, request: p.Request, create: p.Create, owner: str, receive: Receive, send: Send
    ) -> p.Reply | None:
        await self._thread(self.sweep)
        path = self._driver_path(create.path)
        if path in self._paths:
            return p.problem(409, "upload-in-progress", f"an unfinished upload is writing {create.path}: resume "
                             "or cancel it first", tus=request.tus)
        now = self.clock()
        record = p.UploadRecord(
            id=secrets.token_urlsafe(24), path=path, length=create.length, owner=owner,
            protocol=create.protocol, created=now, expires=now + self.config.expiry,
            metadata=create.metadata, digest=create.digest,
        )
        # The destination must be writable before the upload is promised: open (and leave) a fresh writer.
        await self._thread(self._open, record, 0, close=True)
        await self._thread(self.records.save, record)
        self._paths[path] = record.id
        if create.interim:
            # the upload exists: a client cut from here on resumes it at the 104's Location
            await _send_interim(send, p.reply_interim(self.config, record))
        if create.body is None:
            return p.reply_created(self.config, record, 0, now)
        self._busy.add(record.id)
        try:
            return await self._receive_body(request, record, create.body, receive, created=True)
        finally:
            self._busy.discard(record.id)

    # -- the body -------------------------------------------------------------------------

    async def _receive_body(
        self, request: p.Request, record: p.UploadRecord, body: p.Body, receive: Receive, *, created: bool
    ) -> p.Reply | None:
        tus = request.tus
        if self._active >= self.limits.concurrent_uploads:
            return p.problem(503, "busy", f"{self._active} uploads are running, the most this server takes; "
                             "retry later", tus=tus, headers=(("Retry-After", "5"),))
        self._active += 1
        writer: Writer | None = None
        try:
            writer = await self._thread(self._open, record, body.offset, close=False)
            assert writer is not None
            return await self._stream(request, record, body, receive, writer, created=created)
        finally:
            self._active -= 1
            if writer is not None:
                await self._thread(_close_quietly, writer)

    async def _stream(
        self, request: p.Request, record: p.UploadRecord, body: p.Body, receive: Receive, writer: Writer,
        *, created: bool,
    ) -> p.Reply | None:
        tus = request.tus
        pos = body.offset
        hasher = hashlib.new(body.checksum[0]) if body.checksum else None
        parts: list[bytes] = []  # joined once per write: one copy of the bytes, not two
        held = 0
        unsynced = 0
        too_long = disconnected = timed_out = False
        more = True
        # One write and one durable point may run while the next bytes arrive: a client is not held
        # up by the disk, and every offset reported is still one that durable() returned.
        writing: asyncio.Future[None] | None = None
        syncing: asyncio.Future[p.UploadRecord] | None = None
        try:
            while more:
                try:
                    message = await asyncio.wait_for(receive(), self.limits.body_timeout)
                except TimeoutError:
                    disconnected = timed_out = True
                    break
                if message["type"] == "http.disconnect":
                    disconnected = True
                    break
                chunk = message.get("body", b"")
                more = bool(message.get("more_body", False))
                room = record.length - pos - held
                if len(chunk) > room:
                    chunk, too_long = chunk[:room], True
                if hasher is not None:
                    hasher.update(chunk)
                if chunk:
                    parts.append(chunk)
                    held += len(chunk)
                if held and (held >= WRITE_BLOCK or too_long or not more):
                    if writing is not None:
                        await writing  # in order: ordered-write drivers need it, and memory stays bounded
                    writing = asyncio.ensure_future(self._thread(writer.write, pos, b"".join(parts)))
                    pos += held
                    unsynced += held
                    parts.clear()
                    held = 0
                if too_long:
                    break
                if hasher is None and unsynced >= self.limits.sync_bytes and (syncing is None or syncing.done()):
                    # A durable point mid-request: what a crash of the server would keep.
                    if syncing is not None:
                        record = syncing.result()
                    syncing = asyncio.ensure_future(self._thread(self._sync, writer, record))
                    unsynced = 0
            if writing is not None:
                await writing
            if syncing is not None:
                record = await syncing
        finally:
            # on an error, nothing of this request may still touch the writer when it is closed
            for pending in (writing, syncing):
                if pending is not None and not pending.done():
                    await asyncio.wait([pending])
        if held:  # what arrived before a cut or a timeout is kept too
            await self._thread(writer.write, pos, b"".join(parts))
            pos += held
        if hasher is not None:
            assert body.checksum is not None
            if disconnected or hasher.digest() != body.checksum[1]:
                # tus: the bytes of a request whose checksum fails are dropped; the record keeps the old offset
                if timed_out:
                    return p.reply_body_timeout(self.limits.body_timeout, record.offset, tus=tus)
                return None if disconnected else p.reply_checksum_mismatch(record.offset)
        if not (disconnected or too_long) and pos == record.length and body.completes:
            # _finish takes the durable point and records the completed upload: one record save, not two
            return await self._thread(self._finish, writer, record, tus, created)
        record = await self._thread(self._sync, writer, record)
        if timed_out:  # the client may still listen: it learns where to resume
            return p.reply_body_timeout(self.limits.body_timeout, record.offset, tus=tus)
        if disconnected:
            return None
        if too_long:
            return p.reply_too_long(record, record.offset, tus=tus)
        if not tus and body.completes:
            return p.problem(400, p.PROBLEM + "inconsistent-upload-length",
                             f"Upload-Complete: ?1 but {pos} of the {record.length} bytes arrived; "
                             f"the upload stays open at offset {record.offset}", tus=tus,
                             headers=(("Upload-Offset", str(record.offset)), ("Upload-Complete", "?0")))
        return self._done(record, record.offset, tus, created)

    # -- storage (worker threads) ---------------------------------------------------------

    def _driver_path(self, virtual: str) -> str:
        return f"{self.base}{virtual}" if self.base else virtual

    def _load(self, upload_id: str, owner: str) -> p.UploadRecord | None:
        if not valid_id(upload_id):
            return None
        record = self.records.load(upload_id)
        if record is None or not hmac.compare_digest(record.owner.encode(), owner.encode()):
            return None  # another owner's upload is reported as absent: its id is no proof of anything
        if record.expires < self.clock():
            self._forget(record)
            return None
        return record

    def _offset(self, record: p.UploadRecord) -> int:
        if record.complete or record.offset == 0:
            return p.offset_of(record, record.offset)
        stored = self.storage.held(record.id, record.path)
        offset = p.offset_of(record, stored)
        if offset < record.offset:
            log.warning("upload %s: the storage holds %d bytes, %d were acknowledged", record.id, stored,
                        record.offset)
        return offset

    def _open(self, record: p.UploadRecord, offset: int, *, close: bool) -> Writer | None:
        if close:  # the destination itself must take the object (a spooled upload's too)
            self.driver.open_write(record.path, record.length).abort()
            return None
        return self.storage.open(record.id, record.path, record.length, offset)

    def _sync(self, writer: Writer, record: p.UploadRecord) -> p.UploadRecord:
        offset = writer.durable().prefix_end()
        if self.storage.spooled:
            offset = spool_offset(offset, record.length)  # whole only once stored in the destination
        if offset != record.offset:
            record = attrs.evolve(record, offset=offset, expires=self.clock() + self.config.expiry)
            self.records.save(record)
        return record

    def _finish(self, writer: Writer, record: p.UploadRecord, tus: bool, created: bool) -> p.Reply:
        def verify(w: Writer) -> None:
            if not self._digest_matches(w, record):
                raise _DigestMismatch

        try:
            # with the other uploads finishing now: one durable point for all (Driver.complete_batch)
            # (a digest only reaches here where plan() said BEFORE: see _handle)
            self._publisher.publish(writer, verify if record.digest is not None else None)
        except _DigestMismatch:
            self._forget(record)  # the writer was aborted, nothing published
            return p.reply_digest_mismatch(record, tus=tus)
        record = attrs.evolve(record, offset=record.length, complete=True,
                              expires=self.clock() + self.config.expiry)
        self.records.save(record)
        self._paths.pop(record.path, None)
        return self._done(record, record.length, tus, created)

    def _done(self, record: p.UploadRecord, offset: int, tus: bool, created: bool) -> p.Reply:
        if created:
            return p.reply_created(self.config, record, offset, self.clock())
        return p.reply_appended(self.config, record, offset, self.clock(), tus=tus)

    def _digest_matches(self, writer: Writer, record: p.UploadRecord) -> bool:
        assert record.digest is not None
        algorithm, expected = record.digest
        hasher = hashlib.new(p.REPR_DIGESTS[algorithm])
        buffer = bytearray(READ_BACK_BLOCK)
        view = memoryview(buffer)
        pos = 0
        while pos < record.length:
            n = min(READ_BACK_BLOCK, record.length - pos)
            writer.read_durable(pos, view[:n])  # the stored bytes, before anything is published
            hasher.update(view[:n])
            pos += n
        return hmac.compare_digest(base64.b64encode(hasher.digest()).decode(), expected)

    def _cancel(self, record: p.UploadRecord) -> None:
        self._forget(record)

    def _forget(self, record: p.UploadRecord) -> None:
        if not record.complete and self._paths.get(record.path) == record.id:
            try:
                self.storage.discard(record.id, record.path)
            except TransferCoreError as exc:
                log.warning("upload %s: cannot discard its partial state: %s", record.id, exc)
            self._paths.pop(record.path, None)
        self.records.remove(record.id)

    def sweep(self, *, force: bool = False) -> int:
        """Forget uploads past their expiry (their partial state too); returns how many."""
        now = self.clock()
        if not force and now - self._last_sweep < 60:
            return 0
        self._last_sweep = now
        gone = 0
        for record in list(self.records.all()):
            if record.expires < now and record.id not in self._busy:
                self._forget(record)
                gone += 1
        return gone


class _DigestMismatch(Exception):
    """The stored bytes do not match the upload's ``Repr-Digest``."""


def _close_quietly(writer: Writer) -> None:
    try:
        writer.close()  # an unfinished object keeps its durable partial state
    except TransferCoreError as exc:
        log.warning("closing a writer: %s", exc)


def _storage_problem(exc: TransferCoreError, *, tus: bool) -> p.Reply:
    if isinstance(exc, NotFound):
        return p.problem(404, "not-found", str(exc), tus=tus)
    if isinstance(exc, PermissionDenied):
        return p.problem(403, "forbidden", str(exc), tus=tus)
    if isinstance(exc, NoSpace):
        return p.problem(507, "no-space", str(exc), tus=tus)
    if isinstance(exc, RestartRejected):
        return p.problem(409, "state-lost", f"{exc}; cancel the upload and start again", tus=tus)
    if isinstance(exc, InvalidWrite):
        return p.problem(400, "invalid-write", str(exc), tus=tus)
    return p.problem(500, "storage", str(exc), tus=tus)


def _without_interim(send: Send) -> Send:
    """``send`` for a server without the interim-response extension: the 104 is not sent."""

    async def sending(message: Message) -> None:
        if message["type"] != INTERIM_RESPONSE:
            await send(message)

    return sending


async def _send_interim(send: Send, reply: p.Reply) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
    await send({"type": INTERIM_RESPONSE, "status": reply.status, "headers": headers})


async def _send(send: Send, reply: p.Reply) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
    if reply.status >= 200:
        headers.append((b"content-length", str(len(reply.body)).encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
