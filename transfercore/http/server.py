"""A small HTTP/1.1 server for an ASGI application, on h11 and asyncio streams.

It exists for one thing the ASGI servers (uvicorn, Hypercorn) do not offer on
HTTP/1.1: an interim (1xx) response other than ``100 Continue``.  The resumable-upload
draft's ``104 Upload Resumption Supported`` tells a client the URL of its
upload before the body is read, so that a creation cut mid-body can be
resumed.  An application sends one through the ASGI extension
:data:`INTERIM_RESPONSE`, which this server lists in ``scope["extensions"]``
(HTTP/1.1 requests only: an HTTP/1.0 client must not get a 1xx)::

    await send({"type": "transfercore.interim_response", "status": 104,
                "headers": [(b"location", b"/uploads/...")]})

any number of times before ``http.response.start``.  An application that
does not find the key in ``scope["extensions"]`` (under another server)
sends nothing of the kind.

h11 parses and writes the protocol; this module only moves bytes and time:

* a request body is read from the socket only when the application asks for
  it (``receive()``), one read of at most :data:`READ_CHUNK` at a time, so a
  body of any size is never buffered whole and a slow disk slows the client;
* a request head must arrive whole within ``header_timeout`` of the
  connection (or of the end of the previous response) and within
  ``max_header_size`` (``431``); a body silent for ``body_timeout`` ends as a
  client disconnect (``http.disconnect``: the application keeps its durable
  part);
* a client gone mid-body is an ``http.disconnect``; a reply sent while the
  request body is unread closes the connection after it (``Connection:
  close``), and the rest of the body is read and dropped for a short while so
  that the client sees the reply rather than a reset.
"""

from __future__ import annotations

import asyncio
import email.utils
import http
import logging
import time
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import attrs
import h11

from ..errors import ListenError, TransferCoreError

log = logging.getLogger("transfercore.http.server")
access_log = logging.getLogger("transfercore.http.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

#: The ASGI extension (and its message type) through which an application sends a 1xx response.
INTERIM_RESPONSE = "transfercore.interim_response"
#: Largest single read from a socket while a body is received.
READ_CHUNK = 1 << 20
#: After a reply to a request whose body was not read: how long the rest is read and dropped.
LINGER_SECONDS = 2.0
REASONS = {104: b"Upload Resumption Supported", 460: b"Checksum Mismatch"}


@attrs.frozen
class ServerLimits:
    #: Largest request head (request line and header fields together); larger ones get 431.
    max_header_size: int = 16 << 10
    #: Seconds for a whole request head to arrive, counted from the connection or the previous reply
    #: (an idle keep-alive connection is closed after it).
    header_timeout: float = 30.0
    #: Seconds a request body may stay silent before the request ends as a disconnect.
    body_timeout: float = 65.0
    #: Seconds for a reply to be taken by the client.
    write_timeout: float = 30.0
    #: Seconds requests in progress get to end when the server stops (bodies being received are cut at once).
    shutdown_grace: float = 10.0


_DISCONNECT: Message = {"type": "http.disconnect"}


def _reason(status: int) -> bytes:
    if status in REASONS:
        return REASONS[status]
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _head_size(request: h11.Request) -> int:
    line = len(request.method) + len(request.target) + len(b"  HTTP/1.1\r\n")
    return line + sum(len(name) + len(value) + 4 for name, value in request.headers.raw_items())


class _Date:
    """The ``Date`` field, formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def __call__(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = email.utils.formatdate(now, usegmt=True).encode()
        return self._value


_date = _Date()


class Server:
    """Serves ``app`` on ``host:port`` until :meth:`stop`."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0,
                 limits: ServerLimits | None = None, *, lifespan_required: bool = False) -> None:
        """``lifespan_required``: an application failing its lifespan start-up stops the server (otherwise
        that is taken for an application without lifespan support, served all the same)."""
        self.app = app
        self.lifespan_required = lifespan_required
        self.host = host
        self.port = port
        self.limits = limits or ServerLimits()
        self.state: dict[str, Any] = {}
        self.stopping = False
        self._stop = asyncio.Event()
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._lifespan: _Lifespan | None = None

    def stop(self) -> None:
        """Stop listening and end the connections (safe to call from a signal handler on the loop)."""
        self.stopping = True
        self._stop.set()

    async def serve(self, ready: Callable[[int], None] | None = None) -> None:
        self._lifespan = _Lifespan(self.app, self.state, self.lifespan_required)
        await self._lifespan.startup()
        try:
            listener = await asyncio.start_server(self._accept, self.host, self.port, limit=READ_CHUNK,
                                                  backlog=2048, reuse_address=True)
        except OSError as exc:
            await self._lifespan.shutdown()
            raise ListenError.on(self.host, self.port, exc) from None
        try:
            self.port = listener.sockets[0].getsockname()[1]
            if ready is not None:
                ready(self.port)
            await self._stop.wait()
        finally:
            listener.close()
            await self._drain()
            await self._lifespan.shutdown()

    async def _drain(self) -> None:
        for conn in list(self._connections):
            conn.interrupt()  # idle ones and bodies being received: the application sees a disconnect
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=self.limits.shutdown_grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=5)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        conn = _Connection(self, reader, writer)
        self._connections.add(conn)
        self._tasks.add(task)
        try:
            await conn.run()
        except Exception:
            log.exception("connection from %s failed", conn.client)
        finally:
            self._connections.discard(conn)
            self._tasks.discard(task)
            if conn.abort:
                writer.transport.abort()
            else:
                writer.close()


class _Connection:
    def __init__(self, server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.limits = server.limits
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_header_size)
        peer = writer.get_extra_info("peername")
        sock = writer.get_extra_info("sockname")
        self.client = (str(peer[0]), int(peer[1])) if peer else None
        self.server_addr = (str(sock[0]), int(sock[1])) if sock else None
        #: Waiting for a request head, or for body bytes: a stopping server cuts it there.
        self.interruptible = False
        #: Close with a reset rather than a FIN (a reply could not be completed).
        self.abort = False

    def interrupt(self) -> None:
        if self.interruptible:
            self.abort = True
            self.writer.transport.abort()  # the pending read returns: EOF

    async def run(self) -> None:
        while not self.server.stopping:
            request = await self._read_head()
            if request is None:
                return
            cycle = _Cycle(self, request)
            await cycle.run()
            if cycle.lost or self.abort:
                self.abort = True
                return
            if self.h11.their_state is not h11.DONE:
                await self._linger()  # the reply said Connection: close
                return
            if self.h11.our_state is not h11.DONE:  # the client said Connection: close, or spoke HTTP/1.0
                return
            self.h11.start_next_cycle()

    async def _read_head(self) -> h11.Request | None:
        deadline = asyncio.get_running_loop().time() + self.limits.header_timeout
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    event = self.h11.next_event()
                    if event is h11.NEED_DATA:
                        self.interruptible = True
                        try:
                            data = await self.reader.read(self.limits.max_header_size)
                        finally:
                            self.interruptible = False
                        self.h11.receive_data(data)
                    elif isinstance(event, h11.Request):
                        if _head_size(event) > self.limits.max_header_size:
                            # h11 bounds an unfinished head; one that came whole in a read is measured here
                            await self._refuse(431, "the request head is larger than the server takes")
                            return None
                        return event
                    else:  # ConnectionClosed, or PAUSED after a protocol switch (never asked for)
                        return None
        except TimeoutError:
            if self.h11.trailing_data[0]:  # part of a head arrived: say why the connection closes
                await self._refuse(408, "the request head did not arrive in time")
            return None
        except h11.RemoteProtocolError as exc:
            await self._refuse(exc.error_status_hint, str(exc))
            return None
        except (ConnectionError, OSError):
            return None

    async def _refuse(self, status: int, why: str) -> None:
        """Answer a request that could not be read, then close."""
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = f"{status} {_reason(status).decode()}: {why}\n".encode()
        try:
            data = self.h11.send(h11.Response(status_code=status, reason=_reason(status), headers=[
                (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"), (b"date", _date())]))
            data = (data or b"") + (self.h11.send(h11.Data(data=body)) or b"") + (
                self.h11.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError:
            return
        if await self.write(data):
            await self._linger()

    async def _linger(self) -> None:
        """Half-close, then read and drop what the client still sends for a moment, so that it reads
        the reply instead of a reset caused by unread bytes."""
        try:
            if self.writer.can_write_eof():
                self.writer.write_eof()
            async with asyncio.timeout(LINGER_SECONDS):
                while await self.reader.read(READ_CHUNK):
                    pass
        except (TimeoutError, ConnectionError, OSError):
            pass

    async def write(self, data: bytes) -> bool:
        """``False`` when the client is gone or does not read."""
        try:
            self.writer.write(data)
            async with asyncio.timeout(self.limits.write_timeout):
                await self.writer.drain()
        except (TimeoutError, ConnectionError, OSError):
            self.abort = True
            return False
        return True


class _Cycle:
    """One request and its reply: the ASGI ``receive`` and ``send`` of one application call."""

    def __init__(self, conn: _Connection, request: h11.Request) -> None:
        self.conn = conn
        self.h11 = conn.h11
        self.request = request
        self.head = request.method == b"HEAD"
        #: The client went away, or its body stalled: the connection ends after this cycle.
        self.lost = False
        self.body_done = False
        self.started = False
        self.finished = False
        self.status = 0
        self._held = b""  # the reply's head, written with its first body bytes
        self._pending: deque[Message] = deque()
        self._owe_continue = False
        self._finished = asyncio.Event()

    def scope(self) -> Scope:
        target = self.request.target
        raw_path, _, query = target.partition(b"?")
        version = self.request.http_version.decode()
        extensions: dict[str, Any] = {}
        if version == "1.1":
            extensions[INTERIM_RESPONSE] = {}
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": version,
            "method": self.request.method.decode("ascii"),
            "scheme": "http",
            "path": urllib.parse.unquote(raw_path.decode("latin-1")),
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": [(bytes(name), bytes(value)) for name, value in self.request.headers],
            "client": self.conn.client,
            "server": self.conn.server_addr,
            "state": dict(self.conn.server.state),
            "extensions": extensions,
        }

    async def run(self) -> None:
        try:
            await self.conn.server.app(self.scope(), self.receive, self.send)
        except Exception:
            log.exception("%s %s failed", self.request.method.decode(), self.request.target.decode("latin-1"))
            if not self.started and not self.lost:
                await self._error(500)
        if not self.finished:
            if not self.started and not self.lost:
                await self._error(500)  # the application returned without a reply
            else:
                self.lost = True  # a reply begun and not ended: only closing the connection says so
        self._log()

    async def _error(self, status: int) -> None:
        body = b"Internal Server Error\n"
        await self.send({"type": "http.response.start", "status": status,
                         "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                     (b"content-length", str(len(body)).encode())]})
        await self.send({"type": "http.response.body", "body": body})

    def _log(self) -> None:
        if access_log.isEnabledFor(logging.INFO):
            client = f"{self.conn.client[0]}:{self.conn.client[1]}" if self.conn.client else "-"
            access_log.info('%s "%s %s" %s', client, self.request.method.decode(),
                            self.request.target.decode("latin-1"), self.status or "-")

    # -- receive --------------------------------------------------------------------------

    async def receive(self) -> Message:
        if self._pending:
            return self._pending.popleft()
        if self.lost or self.finished:
            return _DISCONNECT
        if self.body_done:
            await self._finished.wait()  # the only thing left to tell: the reply ended
            return _DISCONNECT
        if self._owe_continue or (self.h11.client_is_waiting_for_100_continue and not self.started):
            self._owe_continue = False
            if not await self._write(self.h11.send(h11.InformationalResponse(status_code=100, reason=b"Continue", headers=[]))):
                return self._lose()
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError:  # cut mid-body (EOF), or a malformed chunk
                return self._lose()
            if event is h11.NEED_DATA:
                self.conn.interruptible = True
                try:
                    async with asyncio.timeout(self.conn.limits.body_timeout):
                        data = await self.conn.reader.read(READ_CHUNK)
                except (TimeoutError, ConnectionError, OSError):
                    return self._lose()
                finally:
                    self.conn.interruptible = False
                self.h11.receive_data(data)
                continue
            message = self._message(event)
            if message is not None:
                return message

    def _message(self, event: object) -> Message | None:
        if isinstance(event, h11.Data):
            return {"type": "http.request", "body": bytes(event.data), "more_body": True}
        if isinstance(event, h11.EndOfMessage):
            self.body_done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return None

    def _lose(self) -> Message:
        self.lost = True
        return _DISCONNECT

    def _buffered_body_done(self) -> bool:
        """Whether the request body has ended, taking what is already buffered (no I/O) into account;
        what is taken waits in ``_pending`` for ``receive``."""
        if self.body_done:
            return True
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError:
                return False
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return self.body_done
            message = self._message(event)
            if message is not None:
                self._pending.append(message)
            if self.body_done:
                return True

    # -- send -----------------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if self.lost or self.finished:
            return  # the client is gone or the reply is over: nothing more is sent
        if kind == INTERIM_RESPONSE:
            if self.started:
                raise RuntimeError("an interim response after http.response.start")
            status = int(message["status"])
            if not 100 <= status < 200 or status == 101:
                raise ValueError(f"an interim response needs a 1xx status other than 101, not {status}")
            waiting = self.h11.client_is_waiting_for_100_continue
            data = self.h11.send(h11.InformationalResponse(
                status_code=status, reason=_reason(status), headers=list(message.get("headers", []))))
            self._owe_continue = waiting  # sending any 1xx ends h11's wait; the 100 still comes first read
            if not await self._write(data):
                self.lost = True
        elif kind == "http.response.start":
            if self.started:
                raise RuntimeError("http.response.start sent twice")
            self.started = True
            self.status = int(message["status"])
            headers = list(message.get("headers", []))
            headers.append((b"date", _date()))
            if not self._buffered_body_done():
                # the body is not read (a refusal): the connection cannot carry another request
                headers.append((b"connection", b"close"))
            self._held = self.h11.send(h11.Response(status_code=self.status, reason=_reason(self.status),
                                                    headers=headers)) or b""
        elif kind == "http.response.body":
            if not self.started:
                raise RuntimeError("http.response.body before http.response.start")
            body = message.get("body", b"")
            data = self._held
            self._held = b""
            if body and not self.head:
                data += self.h11.send(h11.Data(data=body)) or b""
            if not message.get("more_body", False):
                data += self.h11.send(h11.EndOfMessage()) or b""
                self.finished = True
                self._finished.set()
            if data and not await self._write(data):
                self.lost = True
        # other messages (extensions this server does not offer) are ignored, as ASGI asks

    async def _write(self, data: bytes | None) -> bool:
        return await self.conn.write(data) if data else True


class ApplicationStartFailed(TransferCoreError):
    """The ASGI application failed its lifespan start-up, so nothing is served."""

    hint = "see the lines logged before this one, fix what they name and start the server again"


class _Lifespan:
    """The ASGI lifespan protocol; an application that does not speak it is served all the same."""

    def __init__(self, app: ASGIApp, state: dict[str, Any], required: bool) -> None:
        self.app = app
        self.state = state
        self.required = required
        self._error: BaseException | None = None
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        self._started: asyncio.Future[None] | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._supported = True

    async def startup(self) -> None:
        loop = asyncio.get_running_loop()
        self._started = loop.create_future()
        self._stopped = loop.create_future()
        self._task = asyncio.create_task(self._run())
        await self._queue.put({"type": "lifespan.startup"})
        await asyncio.wait([self._started, self._task], return_when=asyncio.FIRST_COMPLETED)
        if not self._started.done():
            if self.required:
                if isinstance(self._error, TransferCoreError):
                    raise self._error  # already says what to do
                raise ApplicationStartFailed(f"the application's start-up failed: {self._error!r}") from self._error
            self._supported = False
            return
        self._started.result()  # lifespan.startup.failed raises here

    async def shutdown(self) -> None:
        if not self._supported or self._task is None or self._stopped is None:
            return
        await self._queue.put({"type": "lifespan.shutdown"})
        await asyncio.wait([self._stopped, self._task], timeout=30, return_when=asyncio.FIRST_COMPLETED)

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        try:
            await self.app(scope, self._queue.get, self._send)
        except Exception as exc:  # noqa: BLE001 - an application without lifespan support raises here
            self._error = exc
            starting = self._started is not None and not self._started.done()
            if starting and not self.required:
                log.debug("the application does not speak the ASGI lifespan protocol: %s", exc)
            elif starting and isinstance(exc, TransferCoreError):
                pass  # startup() raises it for the command to say in one line
            else:
                log.exception("the application's lifespan failed")

    async def _send(self, message: Message) -> None:
        assert self._started is not None and self._stopped is not None
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self._started.set_result(None)
        elif kind == "lifespan.startup.failed":
            self._started.set_exception(
                ApplicationStartFailed(f"the application did not start: {message.get('message', '')}"))
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            if not self._stopped.done():
                self._stopped.set_result(None)


__all__ = ["INTERIM_RESPONSE", "ApplicationStartFailed", "Server", "ServerLimits"]
