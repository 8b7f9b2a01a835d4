"""The asyncio GridFTP server: control connections in the event loop, data in threads.

Protocol decisions are made by :class:`~.session.Session`; this module only
carries out its actions against a storage driver and the network.  The
marker rules live here because they join the two:

* ``112`` performance markers count bytes received (progress, not safety);
* ``111`` restart markers name only ranges returned by ``Writer.durable()``,
  as deltas, on the restart interval and once more before the final reply;
* ``226`` follows ``Writer.complete()``: the whole object is durable and
  published.  A short upload, a missing EOF or a bad block never reaches
  ``complete()``; the durable part is kept for a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import attrs

from .. import checksums
from ..contract import Driver, Writer
from ..errors import TransferAborted, TransferCoreError
from ..ranges import RangeSet
from . import listing
from .control import CommandReader, Reply
from .datachannel import (
    ModeEReceiver,
    ModeESender,
    PassiveListener,
    Progress,
    close_quietly,
    connect,
    receive_stream,
    send_stream,
    set_buffers,
)
from .errors import BadArgument, DataTimeout, RemoteProtocolError
from .gsi import Credential, GSIConfig
from .gsi.control import Authenticated, ControlFilter
from .gsi.control import Reply as GSIReply
from .gsi.datasock import secure_data_socket
from .hostport import HostPort
from .limits import Admission, IdleClock, Limits, Slot
from .markers import PerfMarker, RestartMarkers, perf_marker
from .modee import encode_block, encode_eof_eod
from .replies import error_reply
from .session import (
    Abort,
    Active,
    Authenticate,
    Checksum,
    Close,
    Listing,
    OpenPassive,
    Rename,
    Retrieve,
    Session,
    SessionConfig,
    State,
    StorageOp,
    Store,
)
from .spool import Spool, SpoolFull
from .users import UserDB

log = logging.getLogger("transfercore.gridftp")
T = TypeVar("T")

SEND_BLOCK = 1024 * 1024


@attrs.frozen
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 2811
    passive_ports: range | None = None
    session: SessionConfig = SessionConfig()
    idle_timeout: float = 900.0
    data_timeout: float = 60.0
    max_sessions: int = 64
    max_block: int = 64 * 1024 * 1024
    #: Driver path that the client's ``/`` maps to.
    base_path: str = "/"
    #: GSI (gsiftp://): host credential, trusted CAs, grid-mapfile; None for password logins only
    gsi: GSIConfig | None = None
    limits: Limits | None = None
    #: USER/PASS from non-loopback peers (passwords in the clear on the network)
    allow_cleartext_passwords: bool = False
    #: an upload of unknown size (no ALLO) spools beside its destination, at most this much
    max_spool: int = 4 << 30
    #: ... or, for storage without local paths, in memory, at most this much
    max_spool_memory: int = 256 << 20

    def effective_limits(self) -> Limits:
        if self.limits is not None:
            return self.limits
        return Limits(max_sessions=self.max_sessions, idle_timeout=self.idle_timeout)


class TransferFailed(TransferCoreError):
    """A transfer ended without its whole object; ``code`` is the reply to send."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class GridFTPServer:
    def __init__(self, config: ServerConfig, driver: Driver, users: UserDB | None = None) -> None:
        self.config = config
        self.driver = driver
        self.users = users or UserDB({})
        self.pool = ThreadPoolExecutor(
            max_workers=max(16, config.max_sessions * 2), thread_name_prefix="gridftp"
        )
        self.sessions = 0
        self.admission = Admission(config.effective_limits())
        self.connections: dict[int, Connection] = {}
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(
            self._on_connect, self.config.host, self.config.port, limit=1 << 16, reuse_address=True
        )
        return self._server.sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("127.0.0.1", 0)
        slot, evicted = self.admission.connect(peer[0], time.monotonic())
        for old in evicted:
            # the oldest connection that never logged in makes room; it cannot hold anyone out
            conn = self.connections.get(old.id)
            if conn is not None:
                conn.evict()
        self.sessions += 1
        connection = Connection(self, reader, writer, slot)
        self.connections[slot.id] = connection
        try:
            await connection.run()
        except Exception:  # noqa: BLE001 - one broken session must never stop the server
            log.exception("session ended with an internal error")
        finally:
            self.sessions -= 1
            self.connections.pop(slot.id, None)
            self.admission.release(slot)
            writer.close()


class Connection:
    """One control connection."""

    def __init__(
        self,
        server: GridFTPServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        slot: Slot | None = None,
    ) -> None:
        self.server = server
        self.config = server.config
        self.driver = server.driver
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername") or ("127.0.0.1", 0)
        local = writer.get_extra_info("sockname") or (self.config.host, 0)
        self.local_host = local[0]
        self.session = Session(self.config.session, peer_host=peer[0])
        self.commands = CommandReader()
        self.listener: PassiveListener | None = None
        self.transfer: asyncio.Task[None] | None = None
        self.stop = threading.Event()
        self.data_socks: list[socket.socket] = []
        self.closing = False
        self.aborted = False
        self.peer_host = peer[0]
        self.slot = slot or Slot(id=0, address=peer[0], connected_at=time.monotonic())
        self.gsi = ControlFilter(self.config.gsi) if self.config.gsi is not None else None
        self.delegated: Credential | None = None
        self.idle = IdleClock(time.monotonic(), server.admission.limits.idle_timeout,
                              server.admission.login_deadline(self.slot))

    # -- plumbing ------------------------------------------------------------------

    async def io(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.server.pool, fn, *args)

    async def send(self, reply: Reply) -> None:
        if self.writer.is_closing():
            return
        data = reply.encode()
        self.writer.write(self.gsi.protect(data) if self.gsi is not None else data)
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    def dpath(self, path: str) -> str:
        base = self.config.base_path.rstrip("/")
        return f"{base}{path}" if path != "/" else (base or "/")

    # -- main loop -------------------------------------------------------------------

    def evict(self) -> None:
        """Drop this connection (it never logged in) to admit a newer one."""
        self.closing = True
        with contextlib.suppress(Exception):
            self.writer.write(Reply.one(421, "Too many connections waiting to log in; closing the oldest.").encode())
        self.writer.close()

    async def run(self) -> None:
        await self.send(self.session.greeting())
        try:
            while not self.closing:
                now = time.monotonic()
                reason = None if self.transfer is not None else self.idle.expired_reason(now)
                if reason is not None:
                    await self.send(Reply.one(421, reason))
                    break
                # only whole commands move the deadline: a trickled line cannot keep the slot
                timeout = None if self.transfer is not None else max(0.0, self.idle.deadline() - now)
                try:
                    data = await asyncio.wait_for(self.reader.read(65536), timeout)
                except TimeoutError:
                    continue
                except ConnectionError:
                    break
                if not data or self.closing:
                    break
                await self.on_control_data(data)
        finally:
            await self.abort_transfer()
            if self.listener is not None:
                self.listener.close()

    async def on_control_data(self, data: bytes) -> None:
        items: list[Any] = self.gsi.receive(data) if self.gsi is not None else [data]
        for item in items:
            if self.closing:
                return
            if isinstance(item, GSIReply):
                await self.send_clear(item.code, item.text)
                continue
            if isinstance(item, Authenticated):
                await self.gsi_authenticated(item)
                continue
            for event in self.commands.receive(item):
                self.idle.command(time.monotonic())
                outputs = self.session.handle(event)
                if self.session.state is State.READY and not self.slot.logged_in and not await self.admit():
                    return  # an anonymous login beyond the session limit
                for output in outputs:
                    await self.execute(output)
                    if self.closing:
                        return

    async def send_clear(self, code: int, text: str) -> None:
        # AUTH/ADAT replies: before the context exists they cannot be wrapped
        self.idle.command(time.monotonic())
        self.writer.write(Reply.one(code, text).encode())
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()
        if self.gsi is not None and self.gsi.security.broken:
            self.closing = True

    async def gsi_authenticated(self, event: Authenticated) -> None:
        assert self.config.gsi is not None
        self.idle.command(time.monotonic())
        self.session.gsi_authenticated(event.identity, delegated=event.delegated is not None)
        self.delegated = event.delegated
        log.info("GSI: %s authenticated from %s%s", event.identity, self.peer_host,
                 "" if event.delegated else " (no delegation: DCAU N only)")
        await self.send_clear(event.reply.code, event.reply.text)

    async def admit(self) -> bool:
        """Take a session slot for a successful login; refuse (and close) when they are all taken."""
        refusal = self.server.admission.login(self.slot)
        if refusal is not None:
            await self.send(Reply.one(421, refusal))
            self.closing = True
            return False
        self.idle.logged_in()
        return True

    async def check_login(self, user: str, password: str) -> bool:
        gsi = self.gsi.security if self.gsi is not None else None
        if gsi is not None and gsi.secured:
            try:
                account = gsi.account(user)
            except TransferCoreError as exc:
                await self.send(Reply.one(530, " ".join(str(exc).split())))
                return False
            log.info("GSI: %s logged in as %s", gsi.identity, account)
            return True
        if not self.config.allow_cleartext_passwords and not _loopback(self.peer_host):
            log.warning("refused a cleartext password login from %s", self.peer_host)
            await self.send(Reply.one(
                530, "Passwords are refused over an unencrypted connection from another host; use "
                "gsiftp:// (GSI), or the operator may pass --allow-cleartext-passwords."))
            return False
        admission = self.server.admission
        wait = admission.check_wait(self.peer_host, time.monotonic())
        if wait > 0:
            await asyncio.sleep(wait)
        ok = await self.io(self.server.users.check, user, password)
        if ok:
            admission.login_succeeded(self.peer_host)
        else:
            admission.login_failed(self.peer_host, time.monotonic())
        return ok

    async def execute(self, output: Any) -> None:
        if isinstance(output, Reply):
            await self.send(output)
        elif isinstance(output, Close):
            self.closing = True
        elif isinstance(output, Abort):
            await self.abort_transfer(reply=True)
        elif isinstance(output, Authenticate):
            ok = await self.check_login(output.user, output.password)
            if ok and not await self.admit():
                return
            for out in self.session.login_done(ok, writable=True):
                await self.execute(out)
        elif isinstance(output, OpenPassive):
            await self.open_passive(output.kind)
        elif isinstance(output, StorageOp):
            await self.send(await self.storage_op(output))
        elif isinstance(output, Rename):
            await self.send(await self.guard(self._rename, output))
        elif isinstance(output, Checksum):
            await self.send(await self.guard(self._checksum, output))
        elif isinstance(output, (Store, Retrieve, Listing)):
            self.stop = threading.Event()
            self.aborted = False
            self.transfer = asyncio.create_task(self.run_transfer(output))

    async def guard(self, fn: Callable[[Any], Any], arg: Any) -> Reply:
        try:
            return await fn(arg)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a reply
            return error_reply(exc)

    # -- simple commands ---------------------------------------------------------------

    async def open_passive(self, kind: str) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        try:
            self.listener = PassiveListener(self.local_host, self.config.passive_ports)
        except TransferCoreError as exc:
            await self.send(Reply.one(425, f"Cannot open a passive connection: {exc}"))
            return
        for out in self.session.passive_done(kind, (self.listener.address(),)):
            await self.execute(out)

    async def storage_op(self, op: StorageOp) -> Reply:
        try:
            return await self._storage_op(op)
        except Exception as exc:  # noqa: BLE001
            return error_reply(exc)

    async def _storage_op(self, op: StorageOp) -> Reply:
        path = self.dpath(op.path)
        verb = op.verb
        if verb in ("SIZE", "MDTM", "MLST", "CWD", "RNFR"):
            info = await self.io(self.driver.stat, path)
            if verb == "SIZE":
                if info.is_dir:
                    return Reply.one(550, f"{op.path}: not a plain file.")
                return Reply.one(213, str(info.size))
            if verb == "MDTM":
                return Reply.one(213, listing.ftp_time(info.mtime_ns))
            if verb == "MLST":
                line = listing.mlst_line(info, op.path, writable=self.session.writable)
                if line is None:
                    return Reply.one(550, "The name cannot be shown on the control channel.")
                return Reply(250, (f"status of {op.path}", line, "End."))
            if verb == "CWD":
                if not info.is_dir:
                    return Reply.one(550, f"{op.path}: not a directory.")
                self.session.cwd_done(op.path)
                return Reply.one(250, "CWD command successful.")
            self.session.rename_from_done(op.path)
            return Reply.one(350, "Ready for RNTO.")
        if verb == "MKD":
            await self.io(self.driver.mkdir, path)
            quoted = op.path.replace('"', '""')
            return Reply.one(257, f'"{quoted}" directory created.')
        if verb == "RMD":
            await self.io(self.driver.rmdir, path)
            return Reply.one(250, "RMD command successful.")
        if verb == "DELE":
            await self.io(self.driver.remove, path)
            return Reply.one(250, "DELE command successful.")
        return Reply.one(502, f"{verb} is not implemented.")

    async def _rename(self, op: Rename) -> Reply:
        await self.io(self.driver.rename, self.dpath(op.src), self.dpath(op.dst))
        return Reply.one(250, "Rename successful.")

    async def _checksum(self, op: Checksum) -> Reply:
        return Reply.one(213, await self.io(self._checksum_sync, op))

    def _checksum_sync(self, op: Checksum) -> str:
        path = self.dpath(op.path)
        whole = op.offset == 0 and op.length is None
        if whole:
            native = self.driver.checksum(path, op.algorithm.lower())
            if native:
                return native
        with self.driver.open_read(path) as reader:
            if whole:
                return checksums.checksum_reader(reader, op.algorithm)
            end = reader.size if op.length is None else min(reader.size, op.offset + op.length)
            if op.offset > reader.size:
                raise BadArgument(f"CKSM offset {op.offset} is past the end ({reader.size} bytes)")
            hasher = checksums.new(op.algorithm)
            pos = op.offset
            while pos < end:
                n = min(4 << 20, end - pos)
                data = reader.read(pos, n)
                if len(data) != n:
                    raise TransferCoreError(f"short read at {pos} while computing the checksum")
                hasher.update(data)
                pos += n
            return hasher.hexdigest()

    # -- data connections ------------------------------------------------------------------

    async def abort_transfer(self, *, reply: bool = False) -> None:
        task = self.transfer
        if task is not None:
            self.aborted = True
            self.stop.set()
            for sock in list(self.data_socks):
                close_quietly(sock)
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
        if reply:
            await self.send(Reply.one(226, "Abort successful."))

    def _track(self, sock: socket.socket, buffer_size: int | None, *, initiator: bool = False) -> Any:
        sock.settimeout(self.config.data_timeout)
        set_buffers(sock, buffer_size)
        if self.config.gsi is not None:
            # DCAU: authenticated on first use, in the transfer thread, bounded by the data timeout
            try:
                sock = secure_data_socket(  # type: ignore[assignment]
                    sock, initiator=initiator, credential=self.delegated, trust=self.config.gsi.trust,
                    protection=self.session.protection, own_identity=self.session.gsi_identity)
            except TransferCoreError:
                close_quietly(sock)
                raise
        self.data_socks.append(sock)
        if self.stop.is_set():
            close_quietly(sock)
            raise TransferAborted("transfer aborted")
        return sock

    async def accept_one(self, buffer_size: int | None) -> socket.socket:
        if self.listener is None:
            raise TransferFailed(425, "No passive listener; send PASV first.")
        sock = await self.io(self.listener.accept, self.config.data_timeout, self.stop)
        return self._track(sock, buffer_size)

    async def connect_many(
        self, addresses: tuple[HostPort, ...], count: int, buffer_size: int | None
    ) -> list[socket.socket]:
        async def one(hp: HostPort) -> socket.socket:
            try:
                sock = await self.io(connect, hp, self.config.data_timeout)
            except OSError as exc:
                raise TransferFailed(
                    425, f"Cannot open data connection to {hp.host}:{hp.port}: {exc}"
                ) from None
            return self._track(sock, buffer_size, initiator=True)

        targets = [addresses[i % len(addresses)] for i in range(max(count, 1))]
        return list(await asyncio.gather(*(one(hp) for hp in targets)))

    async def data_socket(self, data: Any, buffer_size: int | None) -> socket.socket:
        if isinstance(data, Active):
            return (await self.connect_many(data.addresses[:1], 1, buffer_size))[0]
        return await self.accept_one(buffer_size)

    # -- transfers --------------------------------------------------------------------------

    async def run_transfer(self, action: Store | Retrieve | Listing) -> None:
        try:
            if isinstance(action, Store):
                await self.store(action)
            elif isinstance(action, Retrieve):
                await self.retrieve(action)
            else:
                await self.send_listing(action)
        except TransferFailed as exc:
            await self.send(Reply.one(exc.code, " ".join(str(exc).split())[:400]))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a reply
            err: BaseException = TransferAborted("transfer aborted on request") if self.aborted else exc
            log.info("transfer failed: %s", err)
            await self.send(error_reply(err, during_transfer=True))
        finally:
            for sock in self.data_socks:
                close_quietly(sock)
            self.data_socks = []
            if self.listener is not None:
                self.listener.close()
                self.listener = None
            self.session.transfer_done()
            self.transfer = None

    async def store(self, act: Store) -> None:
        if act.alloc is None:
            if act.restart:
                raise TransferFailed(504, "A restart needs the size: send ALLO <size> before REST and STOR.")
            await self.store_spooled(act)
            return
        size = act.alloc
        restart = act.restart or None
        if act.mode == "S" and restart is not None and restart != restart.prefix():
            raise TransferFailed(501, "In MODE S only a prefix restart (REST <offset>) is possible.")
        path = self.dpath(act.path)
        writer: Writer = await self.io(self.driver.open_write, path, size, restart)
        markers = RestartMarkers(writer.resumed)
        marker_lock = asyncio.Lock()
        progress = Progress()
        completed = False
        marker_task: asyncio.Task[None] | None = None
        try:
            await self.send(Reply.one(150, "Beginning transfer."))
            if act.mode == "E":
                marker_task = asyncio.create_task(
                    self.marker_loop(
                        writer, markers, marker_lock, progress, act.restart_interval, act.perf_interval
                    )
                )
            received = await self.receive(act, writer, writer.resumed.prefix_end(), progress)
            missing = RangeSet.span(0, size) - (writer.resumed | received)
            if missing:
                raise TransferFailed(
                    451,
                    f"Upload incomplete: {missing.total()} of {size} announced bytes missing "
                    f"(first missing range {next(iter(missing))}); the durable part is kept for a restart.",
                )
            await self._stop_task(marker_task)
            async with marker_lock:
                durable = await self.io(writer.durable)
                if act.mode == "E":
                    final = markers.update(durable)
                    if final is not None:
                        await self.send(final)
                await self.io(writer.complete)
            completed = True
            await self.send(Reply.one(226, "Transfer Complete."))
        finally:
            await self._stop_task(marker_task)
            if not completed:
                await self._keep_partial(writer, markers, marker_lock, act.mode)

    async def receive(self, act: Store, writer: Any, start: int, progress: Progress) -> RangeSet:
        if act.mode == "E":
            received = await self.receive_mode_e(act, writer, progress)
        else:
            sock = await self.data_socket(act.data, act.buffer_size)
            end = await self.io(receive_stream, sock, writer, start, progress, self.stop)
            received = RangeSet.span(start, end)
        if self.stop.is_set():
            raise TransferAborted("transfer aborted on request")
        return received

    @staticmethod
    async def _stop_task(task: asyncio.Task[None] | None) -> None:
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def store_spooled(self, act: Store) -> None:
        path = self.dpath(act.path)
        # a refusal comes before any data is accepted: a probe writer checks name and permission
        probe: Writer = await self.io(self.driver.open_write, path, 0, None)
        await self.io(probe.abort)
        local = await self.io(self.driver.local_path, path)
        if local is not None:
            spool = Spool(os.path.dirname(local), limit=self.config.max_spool)
        else:
            spool = Spool(None, limit=self.config.max_spool_memory)
        perf: asyncio.Task[None] | None = None
        try:
            progress = Progress()
            await self.send(Reply.one(150, "Beginning transfer (size unknown: spooling until the end)."))
            if act.mode == "E":
                perf = asyncio.create_task(self.perf_loop(progress, act.perf_interval))
            try:
                received = await self.receive(act, spool, act.shift, progress)
            except SpoolFull as exc:
                raise TransferFailed(552, str(exc)) from None
            await self._stop_task(perf)
            size = received.end()
            if received != RangeSet.span(0, size):
                raise TransferFailed(451, f"Upload has holes ({received}); nothing was stored.")
            writer: Writer = await self.io(self.driver.open_write, self.dpath(act.path), size, None)
            try:
                await self.io(spool.copy_into, writer, self.stop)
                await self.io(writer.complete)
            except BaseException:
                with contextlib.suppress(Exception):
                    await self.io(writer.abort)
                raise
            await self.send(Reply.one(226, "Transfer Complete."))
        finally:
            await self._stop_task(perf)
            spool.close()

    async def perf_loop(self, progress: Progress, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            await self.send(perf_marker(PerfMarker(time.time(), 0, progress.total, 1)))

    async def _keep_partial(
        self, writer: Writer, markers: RestartMarkers, lock: asyncio.Lock, mode: str
    ) -> None:
        # Tell the client what is safe before the error reply, then keep it for a restart.
        async with lock:
            with contextlib.suppress(Exception):
                durable = await self.io(writer.durable)
                if mode == "E":
                    reply = markers.update(durable)
                    if reply is not None:
                        await self.send(reply)
            with contextlib.suppress(Exception):
                await self.io(writer.abort)

    async def marker_loop(
        self,
        writer: Writer,
        markers: RestartMarkers,
        lock: asyncio.Lock,
        progress: Progress,
        restart_every: float,
        perf_every: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        next_restart = loop.time() + restart_every
        next_perf = loop.time() + perf_every
        while True:
            await asyncio.sleep(max(0.0, min(next_restart, next_perf) - loop.time()))
            now = loop.time()
            if now >= next_perf:
                next_perf = now + perf_every
                await self.send(perf_marker(PerfMarker(time.time(), 0, progress.total, 1)))
            if now >= next_restart:
                async with lock:
                    durable = await self.io(writer.durable)
                    reply = markers.update(durable)
                    if reply is not None:
                        await self.send(reply)
                next_restart = loop.time() + restart_every

    async def receive_mode_e(self, act: Store, writer: Any, progress: Progress) -> RangeSet:
        receiver = ModeEReceiver(writer, act.shift, self.config.max_block)
        errors: list[BaseException] = []
        active = [0]

        def fail(exc: BaseException) -> None:
            errors.append(exc)
            self.stop.set()
            for s in list(self.data_socks):
                close_quietly(s)

        async def conn(sock: socket.socket) -> None:
            active[0] += 1
            try:
                await self.io(receiver.run, sock, progress, self.stop)
            except BaseException as exc:  # noqa: BLE001
                if not errors:
                    fail(exc)
            finally:
                active[0] -= 1

        tasks: list[asyncio.Task[None]] = []
        if isinstance(act.data, Active):
            socks = await self.connect_many(act.data.addresses, len(act.data.addresses), act.buffer_size)
            tasks = [asyncio.create_task(conn(s)) for s in socks]
        else:
            if self.listener is None:
                raise TransferFailed(425, "No passive listener; send PASV first.")
            while not receiver.finished.is_set() and not errors:
                try:
                    sock = await self.io(self._accept_while, receiver, active)
                except Exception:
                    if errors:
                        break  # a connection failed first; report that cause
                    raise
                if sock is None:
                    break
                tasks.append(asyncio.create_task(conn(self._track(sock, act.buffer_size))))
        if tasks:
            done_waiter = asyncio.ensure_future(asyncio.gather(*tasks))
            finished_waiter = asyncio.ensure_future(self.io(receiver.finished.wait))
            await asyncio.wait({done_waiter, finished_waiter}, return_when=asyncio.FIRST_COMPLETED)
            if not done_waiter.done():
                # Every announced EOD arrived; connections still open carry nothing more.
                await asyncio.sleep(0)
                for s in list(self.data_socks):
                    close_quietly(s)
                with contextlib.suppress(Exception):
                    await done_waiter
            receiver.finished.set()
            with contextlib.suppress(Exception):
                await finished_waiter
        if errors and not receiver.tracker.complete:
            raise errors[0]
        if errors and not isinstance(errors[0], (OSError, TransferAborted)):
            raise errors[0]
        if not receiver.tracker.complete:
            raise RemoteProtocolError(
                "the data connections ended without the EOF/EOD blocks that close a MODE E transfer"
            )
        return receiver.received()

    def _accept_while(self, receiver: ModeEReceiver, active: list[int]) -> socket.socket | None:
        assert self.listener is not None
        listener = self.listener
        listener.sock.settimeout(0.1)
        idle_since = time.monotonic()
        while True:
            if receiver.finished.is_set():
                return None
            if self.stop.is_set():
                raise TransferAborted("transfer aborted")
            try:
                conn, _ = listener.sock.accept()
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return conn
            except TimeoutError:
                pass
            except OSError as exc:
                raise TransferAborted(f"data listener closed: {exc}") from None
            if active[0]:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > self.config.data_timeout:
                t = receiver.tracker
                state = (
                    f"EOF announced {t.expected} EODs" if t.expected is not None else "no EOF block arrived"
                )
                raise DataTimeout(
                    f"MODE E upload stalled: no data connection within {self.config.data_timeout:g} s, "
                    f"{t.seen} EOD(s) received and {state}",
                    hint="the sender must end the transfer with an EOF block giving the EOD count",
                )

    async def retrieve(self, act: Retrieve) -> None:
        reader = await self.io(self.driver.open_read, self.dpath(act.path))
        perf: asyncio.Task[None] | None = None
        try:
            size = reader.size
            base = 0
            if act.window is not None:
                offset, length = act.window
                if offset > size:
                    raise TransferFailed(501, f"ERET offset {offset} is past the end ({size} bytes).")
                base = offset
                ranges = RangeSet.span(offset, min(size, offset + length))
            else:
                ranges = RangeSet.span(0, size)
            if act.restart:
                ranges = ranges - act.restart
            if act.mode == "S" and len(ranges) > 1:
                raise TransferFailed(
                    501, "MODE S can only resume from an offset; use MODE E for range lists."
                )
            progress = Progress()
            await self.send(Reply.one(150, "Opening BINARY mode data connection."))
            if act.perf_markers:
                perf = asyncio.create_task(self.perf_loop(progress, act.perf_markers))
            if act.mode == "S":
                sock = await self.data_socket(act.data, act.buffer_size)
                start = ranges.ranges[0].start if ranges else 0
                end = ranges.end() if ranges else 0
                await self.io(send_stream, sock, reader, start, end, progress, self.stop)
                close_quietly(sock)
            else:
                if isinstance(act.data, Active):
                    socks = await self.connect_many(act.data.addresses, act.parallelism, act.buffer_size)
                else:
                    socks = [await self.accept_one(act.buffer_size)]
                sender = ModeESender(reader, ranges, SEND_BLOCK, base)
                await asyncio.gather(
                    *(
                        self.io(sender.run, s, progress, self.stop, len(socks) if i == 0 else None)
                        for i, s in enumerate(socks)
                    )
                )
                for s in socks:
                    close_quietly(s)
            if self.stop.is_set():
                raise TransferAborted("transfer aborted on request")
            if perf is not None:
                await self._stop_task(perf)
                await self.send(perf_marker(PerfMarker(time.time(), 0, progress.total, 1)))
            await self.send(Reply.one(226, "Transfer Complete."))
        finally:
            await self._stop_task(perf)
            reader.close()

    async def send_listing(self, act: Listing) -> None:
        path = self.dpath(act.path)
        info = await self.io(self.driver.stat, path)
        if info.is_dir:
            entries = await self.io(lambda: list(self.driver.list(path)))
        else:
            entries = [info]
        entries.sort(key=lambda e: e.name)
        if act.verb == "MLSD":
            if not info.is_dir:
                raise TransferFailed(501, f"{act.path} is not a directory; use MLST for a file.")
            body = listing.mlsd_text(entries, writable=self.session.writable)
        elif act.verb == "LIST":
            body = listing.list_text(entries)
        else:
            body = listing.nlst_text(entries)
        await self.send(Reply.one(150, "Opening ASCII mode data connection for listing."))
        sock = await self.data_socket(act.data, None)
        payload = body if act.mode == "S" else (encode_block(0, body) if body else b"") + encode_eof_eod(1)
        await self.io(sock.sendall, payload)
        close_quietly(sock)
        await self.send(Reply.one(226, "Transfer complete."))


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        addr = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(addr, "ipv4_mapped", None)
    return bool((mapped or addr).is_loopback)


async def serve(
    config: ServerConfig,
    driver: Driver,
    users: UserDB | None = None,
    ready: Callable[[int], None] | None = None,
) -> None:
    server = GridFTPServer(config, driver, users)
    port = await server.start()
    if ready is not None:
        ready(port)
    try:
        await server.serve_forever()
    finally:
        await server.close()


__all__ = ["GridFTPServer", "ServerConfig", "State", "serve"]
