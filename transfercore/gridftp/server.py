"""The asyncio GridFTP server: a thin I/O shell around the sans-I/O session.

Each control connection feeds the bytes it reads to a
:class:`~.control.CommandReader`, the commands to its
:class:`~.session.Session`, and carries out what the session returns:
replies are sent, actions (check a password, open a listener, touch the
storage, run a transfer) are done against the driver and the network, and
their results go back to the session, which decides the reply.  Transfers
are in :mod:`.transfers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import attrs

from .. import checksums
from ..contract import Driver
from ..driverkit import checksum_range
from ..errors import TransferCoreError
from .control import CommandReader, Reply
from .datachannel import (
    DataCache,
    PassiveListener,
)
from .download import checksum_span
from .errors import ListenError
from .gsi.control import Authenticated, ControlFilter
from .gsi.control import Reply as GSIReply
from .gsi.credentials import GSIConfig
from .gsi.proxy import Credential
from .limits import Admission, IdleClock, Limits, Slot
from .memory import freeze_startup
from .replies import error_reply
from .session import (
    Abort,
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
from .transfers import DataTransfers
from .upload import DEFAULT_REORDER_WINDOW
from .users import UserDB

log = logging.getLogger("transfercore.gridftp")
T = TypeVar("T")


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
    #: Bytes a MODE E upload into an ordered destination may hold out of order.
    reorder_window: int = DEFAULT_REORDER_WINDOW
    #: Data connections one transfer may open; more is refused with 451.
    max_data_connections: int = 32
    #: Where uploads without ALLO are spooled durably (restart markers, REST);
    #: ``None``: beside the destination when the driver has local paths, else in memory (no restart).
    spool_dir: str | None = None
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
        host, port = self.config.host, self.config.port
        try:
            self._server = await asyncio.start_server(
                self._on_connect, host, port, limit=1 << 16, reuse_address=True
            )
        except OSError as exc:
            raise ListenError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                hint="choose another --port (0 picks a free one) or stop what listens there",
            ) from None
        return int(self._server.sockets[0].getsockname()[1])

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


class Connection(DataTransfers):
    """One control connection: commands to the session, its actions carried out."""

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
        #: MODE E connections kept open between transfers, and those a transfer leaves for it.
        self.cache = DataCache()
        self.keep: list[socket.socket] = []
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
            self.cache.drop()
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
            for out in await self.storage_op(output):
                await self.execute(out)
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
            reply: Reply = await fn(arg)
            return reply
        except Exception as exc:  # noqa: BLE001 - every failure becomes a reply
            return error_reply(exc)

    # -- simple commands ---------------------------------------------------------------

    async def open_passive(self, kind: str) -> None:
        self.cache.drop()
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

    async def storage_op(self, op: StorageOp) -> list[Any]:
        """Carry out a namespace command; the session decides the reply."""
        path = self.dpath(op.path)
        calls = {"MKD": self.driver.mkdir, "RMD": self.driver.rmdir, "DELE": self.driver.remove}
        try:
            if op.verb in calls:
                await self.io(calls[op.verb], path)
                return self.session.storage_done(op, None)
            return self.session.storage_done(op, await self.io(self.driver.stat, path))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a reply
            return [error_reply(exc)]

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
            start, end = checksum_span(op.offset, op.length, reader.size)
            return checksum_range(reader, op.algorithm, start, end)


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
    freeze_startup()
    if ready is not None:
        ready(port)
    try:
        await server.serve_forever()
    finally:
        await server.close()


__all__ = ["GridFTPServer", "ServerConfig", "State", "serve"]
