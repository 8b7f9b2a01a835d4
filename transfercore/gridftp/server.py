"""The asyncio GridFTP server: a thin I/O shell around the sans-I/O session.

Each control connection feeds the bytes it reads to a
:class:`~.control.CommandReader`, the commands to its
:class:`~.session.Session`, and carries out what the session returns:
replies are sent, actions (check a password, open a listener, touch the
storage, run a transfer) are done against the driver and the network, and
their results go back to the session, which decides the reply.  The data
side (the listener, the data connections, the transfers over them) is a
:class:`~.transfers.DataTransfers` each connection holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from .. import checksums
from .. import markers as core_markers
from ..collector import freeze_startup
from ..contract import Driver
from ..driverkit import checksum_range
from ..errors import AlreadyExists, ListenError, NotFound, TransferCoreError
from ..ranges import RangeSet
from ..service import translog
from .commit import Committer
from .control import CommandReader, Reply
from .download import checksum_span
from .gsi.events import Authenticated
from .gsi.events import Reply as GSIReply
from .limits import Admission, IdleClock, Slot
from .markers import RangeMarker
from .serverconfig import ServerConfig
from .session import (
    Abort,
    Authenticate,
    Checksum,
    Close,
    Listing,
    MakeSymlink,
    OpenPassive,
    Rename,
    Retrieve,
    Session,
    SetAttributes,
    State,
    StorageOp,
    Store,
)
from .sharedlimits import SharedAdmission
from .transfers import DataTransfers
from .uploadlock import UPLOADS, SharedUploadLocks, UploadLocks
from .users import UserDB

if TYPE_CHECKING:
    from ..service.stats import Live
    from .gsi.control import ControlFilter
    from .workers import Worker

log = logging.getLogger("transfercore.gridftp")
T = TypeVar("T")

#: How long a worker with more connections than another leaves a new one to the others (seconds).
ACCEPT_DEFERRAL = 0.025
#: How often a worker looks for its connections that another worker evicted (seconds).
EVICTION_POLL = 0.2
IDLE_EVICTED = "Idle session closed to make room for a new login; reconnect to go on."

#: Commands a client may pipeline behind a running transfer before the server stops reading.
MAX_QUEUED_COMMANDS = 4096
#: Bytes read from a control connection at a time.
CONTROL_READ = 16384


@attrs.frozen
class LoginResult:
    ok: bool
    #: Why a login was refused, when it was not the password (for the one 530 reply).
    reason: str | None = None

async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    ready: asyncio.Future[None] = loop.create_future()

    def woken() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), woken)
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


class GridFTPServer:
    def __init__(
        self,
        config: ServerConfig,
        driver: Driver,
        users: UserDB | None = None,
        *,
        worker: Worker | None = None,
    ) -> None:
        self.config = config
        self.driver = driver
        self.users = users or UserDB({})
        self.pool = ThreadPoolExecutor(
            max_workers=max(16, config.max_sessions * 2), thread_name_prefix="gridftp"
        )
        self.sessions = 0
        #: one of several processes serving one listening socket (``serve --workers N``), or alone
        self.worker = worker
        self.admission: Admission
        self.uploads: UploadLocks
        if worker is None:
            self.admission, self.uploads = Admission(config.effective_limits()), UPLOADS
        else:
            self.admission = SharedAdmission(config.effective_limits(), worker.region, worker.index, worker.count,
                                             worker.generation)
            self.uploads = SharedUploadLocks(worker.region, worker.index)
        self.connections: dict[int, Connection] = {}
        # the session knows what the storage's namespace can do (SITE CHMOD/UTIME/SYMLINK*)
        namespace = _namespace(driver) if driver is not None else None
        self.session_config = attrs.evolve(config.session, namespace=namespace)
        #: uploads of every session completed in groups (one durable point for many files)
        self.committer = Committer(driver, self.run_blocking)
        self._server: asyncio.base_events.Server | None = None
        from ..service.stats import ServiceStats

        #: totals for --metrics-port (see transfercore.service)
        self.stats = ServiceStats()
        #: read every complete upload back for the transfer log's CHECKSUM= (None: the storage's own, if any)
        self.checksum_algorithm: str | None = None
        self.background: set[asyncio.Task[None]] = set()
        self._watch: asyncio.Task[None] | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._accepted: set[asyncio.Task[None]] = set()
        core_markers.DURABLE_TIMERS.append(self.stats.durable_call)

    def reconfigure(self, config: ServerConfig, users: UserDB | None) -> None:
        """New settings for new sessions (a reload); a session keeps the settings it started with."""
        self.config = config
        self.users = users or UserDB({})
        self.session_config = attrs.evolve(config.session, namespace=self.session_config.namespace)
        self.admission.limits = config.effective_limits()

    def live_stats(self, *, disk: bool = True) -> Live:
        """What runs now, for a metrics scrape (from another thread: reads only).

        ``disk=False`` leaves out the spool's and the storage's sizes (a walk of
        the spool directory), which one worker of several reports for all."""
        from ..service.stats import Live

        states = {"connected": 0, "idle": 0, "transferring": 0}
        receiving = sending = 0
        with self.stats.lock:
            for conn in list(self.connections.values()):
                if conn.data.transfer is not None:
                    states["transferring"] += 1
                elif conn.slot.logged_in:
                    states["idle"] += 1
                else:
                    states["connected"] += 1
                progress, kind = conn.data.progress, conn.transfer_kind
                if progress is not None and kind in ("STOR", "ESTO"):
                    receiving += progress.total
                elif progress is not None and kind in ("RETR", "ERET"):
                    sending += progress.total
            # under the same lock as transfer_ended's move from in progress to counted
            receiving += self.stats.bytes_received
            sending += self.stats.bytes_sent
        if not disk:
            return Live(received=receiving, sent=sending, sessions=states)
        spool, local = self.config.spool_dir, self._local_root()
        return Live(received=receiving, sent=sending, sessions=states,
                    spool_bytes=_directory_bytes(spool) if spool else None,
                    spool_free=_free_bytes(spool) if spool else None,
                    storage_free=_free_bytes(local) if local else None)

    def _local_root(self) -> str | None:
        try:
            return self.driver.local_path(self.config.base_path) if self.driver is not None else None
        except (TransferCoreError, OSError):
            return None

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def start(self) -> int:
        host, port = self.config.host, self.config.port
        try:
            if self.worker is not None:
                # the supervisor's socket: every worker accepts from it, one connection at a time
                self._accepting = asyncio.create_task(self._accept_loop(self.worker))
                self._watch = asyncio.create_task(self._watch_evictions())
                return int(self.worker.listening.getsockname()[1])
            else:
                self._server = await asyncio.start_server(
                    self._on_connect, host, port, limit=1 << 16, reuse_address=True
                )
        except OSError as exc:
            raise ListenError.on(host, port, exc) from None
        return int(self._server.sockets[0].getsockname()[1])

    async def serve_forever(self) -> None:
        if self._accepting is not None:
            await self._accepting
            return
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def _accept_loop(self, worker: Worker) -> None:
        """Accept from the shared socket, leaving the next connection to a worker with fewer.

        Every worker is woken for each connection and the first to accept
        takes it (asyncio's own server would take every one waiting), so a
        client's four connections at once could all land on one worker.  A
        worker with more connections than another waits a moment first;
        if nobody took the connection meanwhile, it takes it after all.
        """
        loop = asyncio.get_running_loop()
        sock = worker.listening
        while True:
            await _readable(loop, sock)
            if worker.ahead():
                await asyncio.sleep(ACCEPT_DEFERRAL)
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                continue  # another worker took it
            except OSError as exc:  # out of descriptors, say: wait rather than spin
                log.warning("accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            conn.setblocking(False)
            worker.connected()
            task = asyncio.create_task(self._serve_accepted(conn, worker))
            self._accepted.add(task)
            task.add_done_callback(self._accepted.discard)

    async def _serve_accepted(self, conn: socket.socket, worker: Worker) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=conn, limit=1 << 16)
            await self._on_connect(reader, writer)
        finally:
            worker.disconnected()

    async def close(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
            for task in list(self._accepted):
                task.cancel()
        if self._watch is not None:
            self._watch.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.pool.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(ValueError):
            core_markers.DURABLE_TIMERS.remove(self.stats.durable_call)

    async def _watch_evictions(self) -> None:
        """Close this worker's connections that another worker evicted to admit its own."""
        while True:
            await asyncio.sleep(EVICTION_POLL)
            taken = self.admission.take_evicted()
            waiting = [s for s in taken if not s.logged_in]
            self.evict(waiting, "Too many connections waiting to log in; closing the oldest.")
            self.evict([s for s in taken if s.logged_in], IDLE_EVICTED)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("127.0.0.1", 0)
        slot, evicted = self.admission.connect(peer[0], time.monotonic())
        # the oldest connection that never logged in makes room; it cannot hold anyone out
        self.evict(evicted, "Too many connections waiting to log in; closing the oldest.")
        self.sessions += 1
        # asyncio reads a stream's socket into a fresh 256 KiB buffer (an mmap, an mremap and
        # a munmap for each command); a control connection carries lines of a few dozen bytes
        with contextlib.suppress(AttributeError):
            writer.transport.max_size = CONTROL_READ  # type: ignore[attr-defined]
        connection = Connection(self, reader, writer, slot)
        self.connections[slot.id] = connection
        log.info("session %d: connection from %s", slot.id, peer[0])
        self.stats.add("sessions_total", 1)
        translog.log_session("start", slot.id, peer[0])
        try:
            await connection.run()
        except Exception:  # noqa: BLE001 - one broken session must never stop the server
            log.exception("session ended with an internal error")
        finally:
            self.sessions -= 1
            self.connections.pop(slot.id, None)
            self.admission.release(slot)
            writer.close()
            log.info("session %d: ended (%s, %d commands)", slot.id, connection.end_reason,
                     connection.session.commands_seen)
            translog.log_session("end", slot.id, peer[0], connection.session.user,
                                 seconds=f"{time.monotonic() - slot.connected_at:.3f}",
                                 commands=connection.session.commands_seen, reason=connection.end_reason)

    def evict(self, slots: list[Slot], reason: str) -> None:
        for old in slots:
            conn = self.connections.get(old.id)
            if conn is not None:
                conn.evict(reason)


class Connection:
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
        self.session = Session(server.session_config, peer_host=peer[0])
        self.commands = CommandReader()
        self.closing = False
        self.peer_host = peer[0]
        #: the data connections and the transfers over them
        self.data = DataTransfers(
            config=self.config, driver=self.driver, session=self.session, committer=server.committer,
            run_blocking=self.io, send=self.send, post=self.post, dpath=self.dpath, peer_host=self.peer_host,
            uploads=server.uploads,
        )
        self.slot = slot or Slot(id=0, address=peer[0], connected_at=time.monotonic())
        self.gsi: ControlFilter | None = None
        if self.config.gsi is not None:
            from .gsi.control import ControlFilter  # only with GSI: it loads cryptography

            self.gsi = ControlFilter(self.config.gsi)
        self.idle = IdleClock(time.monotonic(), server.admission.limits.idle_timeout,
                              server.admission.login_deadline(self.slot))
        #: Commands read while a transfer runs wait here and are answered in order (pipelining).
        self.queue: asyncio.Queue[Any] = asyncio.Queue(MAX_QUEUED_COMMANDS)
        self.working = False
        #: Held while a command is answered: ABOR's 226 is sent before the queued commands' replies.
        self.turn = asyncio.Lock()
        #: the final reply of the transfer in progress (None until it is sent)
        self.transfer_reply: Reply | None = None
        self.end_reason = "client closed the connection"
        self.last_reply: Reply | None = None
        #: the transfer in progress, for the transfer log and the metrics
        self.transfer_kind: str | None = None
        #: what this transfer's 111 markers named, and its size
        self.marked = RangeSet()
        self.marked_durable = 0

    # -- plumbing ------------------------------------------------------------------

    async def io(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.server.pool, fn, *args)

    async def send(self, *replies: Reply) -> None:
        """Send ``replies`` in one write (a transfer's last ``111`` and its ``226`` go together)."""
        if self.post(*replies):
            with contextlib.suppress(ConnectionError):
                await self.writer.drain()

    def post(self, *replies: Reply) -> bool:
        """Write ``replies`` without waiting for the peer to take them; whether they were written.

        For a reply sent from a callback (a transfer's ``150`` once its worker
        thread opened the object); the next :meth:`send` waits for both.
        """
        transfer = self.data.transfer
        ours = transfer is not None and asyncio.current_task() is transfer
        for reply in replies:
            self.last_reply = reply
            if reply.is_marker:
                self.count_marker(reply)
            if reply.is_final and ours:
                self.transfer_reply = reply
        if self.writer.is_closing():
            return False
        gsi = self.gsi
        # each reply wrapped on its own: a client unwraps one reply per protected token
        self.writer.write(b"".join(gsi.protect(r.encode()) if gsi is not None else r.encode() for r in replies))
        return True

    def count_marker(self, reply: Reply) -> None:
        stats = self.server.stats
        if not reply.is_restart_marker:
            stats.marker("perf")
            return
        stats.marker("restart")
        if isinstance(reply, RangeMarker):  # every 111 this server sends (markers.restart_marker)
            # the last 111 names everything again: count each byte once
            named = reply.ranges
            new = (named - self.marked).total()
            self.marked = self.marked | named
            self.marked_durable = self.marked.total()
            stats.add("bytes_durable", new)

    def dpath(self, path: str) -> str:
        base = self.config.base_path.rstrip("/")
        return f"{base}{path}" if path != "/" else (base or "/")

    # -- main loop -------------------------------------------------------------------

    def evict(self, reason: str) -> None:
        """Drop this connection to admit a newer one: it never logged in, or it is the longest idle."""
        self.closing = True
        self.end_reason = f"closed to make room: {reason}"
        with contextlib.suppress(Exception):
            self.writer.write(self.session.closing(reason).encode())
        self.writer.close()

    def busy(self) -> bool:
        """A transfer runs or commands wait: the idle clock does not run."""
        return self.data.transfer is not None or not self.queue.empty() or self.working

    async def run(self) -> None:
        await self.send(self.session.greeting())
        worker = asyncio.create_task(self.work())
        # The control connection is read in this task itself, not in a task per read raced
        # against the worker: when the worker ends (QUIT, a broken session) while a read
        # waits, that read is cancelled.  Nothing else is: a command being handed over
        # finishes first.
        me = asyncio.current_task()
        assert me is not None
        reading = stopped = False

        def worker_ended(_: object) -> None:
            nonlocal stopped
            if reading and not stopped:
                stopped = True
                me.cancel()

        worker.add_done_callback(worker_ended)
        try:
            while not self.closing and not worker.done():
                now = time.monotonic()
                reason = None if self.busy() else self.idle.expired_reason(now)
                if reason is not None:
                    self.end_reason = reason
                    await self.send(self.session.closing(reason))
                    break
                # only whole commands move the deadline: a trickled line cannot keep the slot
                timeout = None if self.busy() else max(0.0, self.idle.deadline() - now)
                reading = True
                try:
                    if timeout is None:
                        data = await self.reader.read(65536)
                    else:
                        async with asyncio.timeout(timeout):
                            data = await self.reader.read(65536)
                except TimeoutError:
                    continue
                except ConnectionError:
                    break
                except asyncio.CancelledError:
                    if stopped and me.uncancel() == 0:
                        break  # the worker ended: so does the session
                    raise
                finally:
                    reading = False
                if not data or self.closing:
                    break
                await self.on_control_data(data)
        finally:
            worker.cancel()
            with contextlib.suppress(BaseException):
                await worker
            if not worker.cancelled() and worker.exception() is not None:
                # one broken session must never stop the server, but it must be seen
                self.end_reason = "internal error"
                log.error("session %d ended with an internal error", self.slot.id, exc_info=worker.exception())
            await self.data.close()

    async def on_control_data(self, data: bytes) -> None:
        """Read commands: ABOR acts on the running transfer at once, everything else waits its turn."""
        items: list[Any] = self.gsi.receive(data) if self.gsi is not None else [data]
        for item in items:
            if self.closing:
                return
            if isinstance(item, (GSIReply, Authenticated)):
                await self.queue.put(item)
                continue
            for event in self.commands.receive(item):
                self.idle.command(time.monotonic())
                self.server.admission.touch(self.slot, time.monotonic())
                if self.session.urgent(event):
                    async with self.turn:
                        for output in self.session.handle(event):
                            await self.execute(output)
                else:
                    await self.queue.put(event)
                if self.closing:
                    return

    async def work(self) -> None:
        """Answer queued commands in order, each after the transfer before it has ended."""
        while not self.closing:
            item = await self.queue.get()
            self.working = True
            try:
                transfer = self.data.transfer
                if transfer is not None:
                    # wait, never cancel: the transfer ends by itself or by ABOR
                    await asyncio.wait({transfer})
                async with self.turn:
                    await self.process(item)
            finally:
                self.working = False

    async def process(self, item: Any) -> None:
        if isinstance(item, GSIReply):
            await self.send_clear(item.code, item.text)
            return
        if isinstance(item, Authenticated):
            await self.gsi_authenticated(item)
            return
        outputs = self.session.handle(item)
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
        self.data.delegated = event.delegated
        log.info("GSI: %s authenticated from %s%s", event.identity, self.peer_host,
                 "" if event.delegated else " (no delegation: DCAU N only)")
        await self.send_clear(event.reply.code, event.reply.text)

    async def admit(self) -> bool:
        """Take a session slot for a successful login; refuse (and close) when they are all taken.

        When the sessions are full, the longest-idle ones (no transfer, no
        command for a while) are closed with a 421 to make room, so idle
        logins cannot lock everyone else out.
        """
        admission = self.server.admission
        self.server.evict(
            admission.make_room(self.slot, time.monotonic()),
            IDLE_EVICTED,
        )
        refusal = admission.login(self.slot)
        if refusal is not None:
            self.end_reason = refusal
            await self.send(self.session.closing(refusal))
            self.closing = True
            return False
        self.idle.logged_in()
        log.info("session %d: %s logged in from %s%s", self.slot.id, self.session.user, self.peer_host,
                 "" if self.session.writable else " (read-only)")
        translog.log_session("login", self.slot.id, self.peer_host, self.session.user,
                             access="write" if self.session.writable else "read")
        return True

    async def check_login(self, user: str, password: str) -> LoginResult:
        """Check a login; the session turns the result into the one reply to PASS."""
        gsi = self.gsi.security if self.gsi is not None else None
        if gsi is not None and gsi.secured:
            try:
                account = gsi.account(user)
            except TransferCoreError as exc:
                self.server.stats.add("logins_refused", 1)
                return LoginResult(False, " ".join(str(exc).split()))
            log.info("GSI: %s logged in as %s", gsi.identity, account)
            return LoginResult(True)
        if not self.config.allow_cleartext_passwords and not _loopback(self.peer_host):
            log.warning("refused a cleartext password login from %s", self.peer_host)
            return LoginResult(
                False,
                "Passwords are refused over an unencrypted connection from another host; use "
                "gsiftp:// (GSI), or the operator may pass --allow-cleartext-passwords.",
            )
        admission = self.server.admission
        wait = admission.check_wait(self.peer_host, time.monotonic())
        if wait > 0:
            await asyncio.sleep(wait)
        ok = await self.io(self.server.users.check, user, password)
        if ok:
            admission.login_succeeded(self.peer_host)
        else:
            log.info("session %d: login refused for %s from %s", self.slot.id, user, self.peer_host)
            self.server.stats.add("logins_refused", 1)
            admission.login_failed(self.peer_host, time.monotonic())
        return LoginResult(ok)

    async def execute(self, output: Any) -> None:
        if isinstance(output, Reply):
            await self.send(output)
        elif isinstance(output, Close):
            self.closing = True
            if self.last_reply is not None:
                self.end_reason = self.last_reply.summary
        elif isinstance(output, Abort):
            await self.data.abort_transfer(reply=True)
        elif isinstance(output, Authenticate):
            result = await self.check_login(output.user, output.password)
            if result.ok and not await self.admit():
                return
            for out in self.session.login_done(result.ok, writable=True, reason=result.reason):
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
        elif isinstance(output, (SetAttributes, MakeSymlink)):
            for out in await self.change_attributes(output):
                await self.execute(out)
        elif isinstance(output, (Store, Retrieve, Listing)):
            self.track_transfer(output, self.data.start(output))

    async def guard(self, fn: Callable[[Any], Any], arg: Any) -> Reply:
        try:
            reply: Reply = await fn(arg)
            return reply
        except Exception as exc:  # noqa: BLE001 - every failure becomes a reply
            return self.session.command_failed(exc)

    # -- simple commands ---------------------------------------------------------------

    async def open_passive(self, kind: str) -> None:
        try:
            address = self.data.open_passive(self.local_host)
        except TransferCoreError as exc:
            await self.send(self.session.passive_failed(exc))
            return
        for out in self.session.passive_done(kind, (address,)):
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
            return [self.session.command_failed(exc)]

    def track_transfer(self, action: Store | Retrieve | Listing, task: asyncio.Task[None]) -> None:
        """``-v``: one line when a transfer starts, one when it ends with its bytes and outcome."""
        kind = {Store: "upload", Retrieve: "download", Listing: "listing"}[type(action)]
        started = time.monotonic()
        wall_start = time.time()
        self.transfer_reply = None
        self.marked = RangeSet()
        self.marked_durable = 0
        self.transfer_kind = _log_type(action)
        log.info("session %d: %s of %s started (MODE %s)", self.slot.id, kind, action.path, action.mode)
        admission = self.server.admission
        admission.set_busy(self.slot, True)

        def ended(_: asyncio.Task[None]) -> None:
            admission.set_busy(self.slot, False)
            admission.touch(self.slot, time.monotonic())
            progress = self.data.progress
            moved = f", {progress.total} bytes" if progress is not None else ""
            log.info("session %d: %s of %s ended after %.1f s%s: %s", self.slot.id, kind, action.path,
                     time.monotonic() - started, moved,
                     self.transfer_reply.summary if self.transfer_reply else "no reply (connection closed)")
            self.transfer_ended(action, wall_start)

        task.add_done_callback(ended)

    def transfer_ended(self, action: Store | Retrieve | Listing, wall_start: float) -> None:
        """Count the transfer and write its transfer log line (after reading it back for a checksum)."""
        tl = translog
        kind = self.transfer_kind
        stats = self.server.stats
        progress = self.data.progress
        nbytes = progress.total if progress is not None else 0
        final = self.transfer_reply
        code = final.code if final is not None else 0
        complete = final is not None and final.completes_transfer
        with stats.lock:
            # one step under the lock: a scrape sees the bytes either in progress or counted, never both
            self.transfer_kind = None
            if kind in ("STOR", "ESTO"):
                stats.bytes_received += nbytes
            elif kind in ("RETR", "ERET"):
                stats.bytes_sent += nbytes
        if kind is None or isinstance(action, Listing):
            return
        stats.outcome(kind, code)
        durable: int | None = None
        if isinstance(action, Store):
            if complete:
                stats.add("bytes_durable", max(0, nbytes - self.marked_durable))
                durable = max(nbytes, self.marked_durable)
            elif action.mode == "E":
                durable = self.marked_durable
        if not tl.TRANSFERS.isEnabledFor(logging.INFO):
            return  # no transfer log: no line to build, no checksum to read for it
        record = tl.TransferRecord(
            start=wall_start, end=time.time(), user=self.session.user or "-", file=action.path, type=kind,
            code=code, nbytes=nbytes, remote=self.peer_host, streams=max(1, self.data.streams),
            buffer=action.buffer_size or 0, block=_block_size(self.driver) if isinstance(action, Retrieve) else 0,
            durable=durable, session=self.slot.id,
        )
        algorithm = self.server.checksum_algorithm
        if not (algorithm and isinstance(action, Store) and complete):
            tl.log_transfer(record)
            return

        async def with_checksum() -> None:
            try:
                value = await self.io(self._file_checksum, action.path, algorithm)
                tl.log_transfer(attrs.evolve(record, checksum=f"{algorithm}:{value}"))
            except Exception as exc:  # noqa: BLE001 - the line is written all the same
                log.warning("transfer log: no checksum of %s: %s", action.path, exc)
                tl.log_transfer(record)

        bg = asyncio.get_running_loop().create_task(with_checksum())
        self.server.background.add(bg)
        bg.add_done_callback(self.server.background.discard)

    def _file_checksum(self, path: str, algorithm: str) -> str:
        native = self.driver.checksum(self.dpath(path), checksums.canonical(algorithm))
        if native:
            return native
        with self.driver.open_read(self.dpath(path)) as reader:
            return checksums.checksum_reader(reader, algorithm)

    async def change_attributes(self, op: SetAttributes | MakeSymlink) -> list[Any]:
        """SITE CHMOD/UTIME/SYMLINKTO through the driver's namespace operations."""
        try:
            if isinstance(op, MakeSymlink):
                # Driver.symlink replaces what is there: a link must never replace a file.
                try:
                    await self.io(self.driver.lstat, self.dpath(op.path))
                except NotFound:
                    pass
                else:
                    raise AlreadyExists(f"{op.path} exists; remove it first or choose another link name")
                await self.io(self.driver.symlink, self.dpath(op.path), op.target)
            else:
                await self.io(
                    functools.partial(
                        self.driver.set_metadata, self.dpath(op.path), mode=op.mode, mtime_ns=op.mtime_ns
                    )
                )
            return self.session.attributes_done(op)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a reply
            return [self.session.command_failed(exc)]

    async def _rename(self, op: Rename) -> Reply:
        await self.io(self.driver.rename, self.dpath(op.src), self.dpath(op.dst))
        return self.session.renamed(op)

    async def _checksum(self, op: Checksum) -> Reply:
        return self.session.checksum_done(op, await self.io(self._checksum_sync, op))

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


def _free_bytes(path: str) -> int | None:
    import os

    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _directory_bytes(path: str) -> int | None:
    """Bytes of the files directly in ``path`` (spools are flat), read at a scrape."""
    import os

    total = 0
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
    except OSError:
        return None
    return total


def _log_type(action: Store | Retrieve | Listing) -> str | None:
    """The transfer log's TYPE=: the command that started the transfer."""
    if isinstance(action, Store):
        return "ESTO" if action.update or action.shift else "STOR"
    if isinstance(action, Retrieve):
        return "ERET" if action.window is not None else "RETR"
    return None


def _block_size(driver: Driver) -> int:
    from .transfers import SEND_BLOCK

    caps = driver.capabilities()
    return max(caps.min_block_size, min(SEND_BLOCK, caps.preferred_block_size))


def _namespace(driver: Driver) -> frozenset[str]:
    """The driver's namespace operations, with the two SITE commands need that ``namespace()`` omits."""
    extra = {
        name for name in ("set_metadata", "symlink") if getattr(type(driver), name) is not getattr(Driver, name)
    }
    return driver.namespace() | extra


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
