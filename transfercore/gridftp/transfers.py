"""Data transfers of one control connection: uploads, downloads, listings (the I/O shell).

The decisions are made without I/O elsewhere: :mod:`.upload` plans an
upload from the destination's capabilities and judges whether it ended
complete, :mod:`.download` what a download sends, :mod:`.markers` when
markers are due and what they name, :mod:`.modee` the framing of every
data connection, :class:`transfercore.reorder.ReorderWindow` the order in
which blocks reach a destination that needs it.  This module moves bytes
between sockets and the storage driver accordingly:

* ``112`` performance markers count bytes received (progress, not safety);
* ``111`` restart markers name only ranges returned by ``Writer.durable()``,
  as deltas, on the restart interval and once more before the final reply;
* ``226`` follows ``Writer.complete()``: the whole object is durable and
  published.  A short upload, a missing EOF or a bad block never reaches
  ``complete()``; the durable part is kept for a restart.

Data connections run in worker threads (blocking sockets, see
:mod:`.datachannel`); the event loop only starts them and accepts new ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..blockpool import BlockPool
from ..contract import Driver, Writer
from ..errors import IsADirectory, NotFound, TransferAborted, TransferCoreError
from ..markers import Durable
from ..ranges import RangeSet
from ..reorder import ReorderWindow
from . import listing
from .commit import Committer
from .control import Reply
from .datachannel import (
    DataCache,
    Deliver,
    ModeESender,
    PassiveListener,
    Progress,
    close_quietly,
    connect,
    receive_mode_e,
    receive_stream,
    send_stream,
    set_buffers,
)
from .download import plan_retrieve
from .errors import DataTimeout, NoDataConnection, RemoteProtocolError, TooManyDataConnections
from .gsi.dataprot import DataProtection
from .hostport import HostPort
from .inplace import SliceWriter, copy_kept
from .latetask import LateTask
from .markers import MarkerSchedule, PerfMarker, RestartMarkers, perf_marker
from .memory import release_garbage
from .modee import encode_block, encode_eof_eod
from .opening import STOP_POLL, Opened, TripLink
from .session import Active, Listing, Passive, Retrieve, Store
from .spool import Spool
from .spooled import drop_spooled, open_spool, write_spooled
from .upload import StorePlan, UploadTracker, check_complete, plan_store
from .uploadlock import UPLOADS, UploadLocks

if TYPE_CHECKING:
    from .gsi.proxy import Credential
    from .serverconfig import ServerConfig

log = logging.getLogger("transfercore.gridftp")
T = TypeVar("T")

#: Largest MODE E block a download sends.
SEND_BLOCK = 1024 * 1024
#: Longest an upload waits for another upload of its destination to end (its clean-up, after an abort).
UPLOAD_WAIT = 30.0
#: How long a MODE E upload on cached data connections runs before it also accepts new ones.
CACHED_ACCEPT_DELAY = 0.05
#: Largest MODE E upload on one cached data connection whose object is opened
#: and received in one trip to a worker thread (see ``DataTransfers._store``).
ONE_TRIP_LIMIT = 1024 * 1024
#: Uploads into an ordered destination from this size give their large blocks away
#: (:mod:`transfercore.blockpool`) instead of lending them.
POOL_FROM = 4 * 1024 * 1024


def whole_object(plan: StorePlan, length: int) -> RangeSet:
    """Every byte of the object an upload completed.

    Once the commit returned the object as published, all of it is durable
    (the commit is the durable point, no ``durable()`` call needed): the
    last ``111`` before ``226`` names the rest of it, so the client's record
    ends complete, as the real server's final marker does.  Asking the
    storage for a marker before the commit cost a sync and a resume record
    per file.
    """
    return RangeSet.span(0, plan.object_size(length))


def wake(sock: socket.socket) -> None:
    """Shut a data connection down so that a thread blocked on it returns; the transfer closes it.

    Closing it from here would free its descriptor while that thread may be
    about to wait on it: the number, reused at once by another session's new
    connection or file, would have the thread wait on (or read) that one.
    """
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class TransferSession(Protocol):
    """What :class:`DataTransfers` asks of the session (:class:`~.session.Session`).

    The events of a transfer are reported here and the session answers each
    with the reply to send; the rest is read only.
    """

    writable: bool
    gsi_identity: str | None
    protection: DataProtection

    def transfer_started(self, action: Store | Retrieve | Listing, *, spooled: bool = False) -> Reply: ...

    def transfer_finished(self, action: Store | Retrieve | Listing) -> Reply: ...

    def transfer_failed(self, exc: BaseException, *, aborted: bool = False) -> Reply: ...

    def abort_finished(self) -> Reply: ...

    def transfer_done(self, *, cached: bool = False) -> None: ...


class DataTransfers:
    """The data side of one control connection: its data connections and the transfers over them.

    It owns the passive listener, the MODE E connections kept between
    transfers, the transfer task running now and its abort.  It is given
    what it works with (the settings, the driver, the group committer) and
    the two ways out: ``session``, to which every event of a transfer is
    reported (started, finished, failed, aborted, done) and which decides
    the reply, and ``send``, which sends that reply on the control
    connection.  It knows nothing of the control connection that holds it.
    """

    def __init__(
        self,
        *,
        config: ServerConfig,
        driver: Driver,
        session: TransferSession,
        committer: Committer,
        run_blocking: Callable[..., Awaitable[Any]],
        send: Callable[..., Awaitable[None]],
        post: Callable[[Reply], object],
        dpath: Callable[[str], str],
        peer_host: str,
        uploads: UploadLocks = UPLOADS,
    ) -> None:
        self.config = config
        #: the destinations being uploaded (by every session of the server)
        self.uploads = uploads
        self.driver = driver
        self.session = session
        #: completes uploads together with those of the other sessions (one per server)
        self.committer = committer
        self._run_blocking = run_blocking
        self._send = send
        self._post = post
        self._dpath = dpath
        self.peer_host = peer_host
        self.listener: PassiveListener | None = None
        self.transfer: asyncio.Task[None] | None = None
        self.stop = threading.Event()
        self.aborted = False
        self.data_socks: list[socket.socket] = []
        #: MODE E connections kept open between transfers, and those a transfer leaves for it.
        self.cache = DataCache()
        self.keep: list[socket.socket] = []
        #: the credential the client delegated over GSI, for DCAU on data connections
        self.delegated: Credential | None = None
        #: The reorder window of the upload in progress, if it has one.
        self.window: ReorderWindow | None = None
        #: The buffers the upload in progress gives its window and writer, if it keeps blocks.
        self.blocks: BlockPool | None = None
        #: Bytes moved by the transfer in progress (for the log).
        self.progress: Progress | None = None
        #: Data connections the transfer in progress used (the transfer log's STREAMS=).
        self.streams = 0

    async def io(self, fn: Callable[..., T], *args: Any) -> T:
        result: T = await self._run_blocking(fn, *args)
        return result

    async def send(self, *replies: Reply) -> None:
        await self._send(*replies)

    def dpath(self, path: str) -> str:
        return self._dpath(path)

    # -- the connection's side ---------------------------------------------------------------

    def start(self, action: Store | Retrieve | Listing) -> asyncio.Task[None]:
        """Run one transfer the session asked for, as the task :attr:`transfer`."""
        if self.stop.is_set():
            # (only a stopped transfer's event is replaced: the threads of a finished
            # one are done with it, and a new event per small file is a cost of its own)
            self.stop = threading.Event()
        self.aborted = False
        self.progress = None
        self.streams = 0
        self.transfer = asyncio.create_task(self.run_transfer(action))
        return self.transfer

    def open_passive(self, local_host: str) -> HostPort:
        """A new passive listener (the old one and its cached connections closed); its address."""
        self.cache.drop()
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        self.listener = PassiveListener(local_host, self.config.passive_ports)
        return self.listener.address()

    async def close(self) -> None:
        """The control connection ends: abort a transfer, close every data connection and the listener."""
        await self.abort_transfer()
        self.cache.drop()
        if self.listener is not None:
            self.listener.close()

    # -- data connections ------------------------------------------------------------------

    async def abort_transfer(self, *, reply: bool = False) -> None:
        task = self.transfer
        if task is not None:
            self.aborted = True
            self.stop.set()
            if self.window is not None:
                self.window.stop(TransferAborted("transfer aborted on request"))
            for sock in list(self.data_socks):
                wake(sock)
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
        if reply:
            await self.send(self.session.abort_finished())

    def _track(self, sock: socket.socket, buffer_size: int | None, *, initiator: bool = False) -> socket.socket:
        sock.settimeout(self.config.data_timeout)
        set_buffers(sock, buffer_size)
        gsi = self.config.gsi
        if gsi is not None:
            # only with GSI: the secure sockets load cryptography
            from .gsi.datasock import SecureDataSocket, secure_data_socket
        if gsi is not None and not isinstance(sock, SecureDataSocket):
            # DCAU: authenticated on first use, in the transfer thread, bounded by the data timeout
            try:
                sock = secure_data_socket(  # type: ignore[assignment]
                    sock, initiator=initiator, credential=self.delegated, trust=gsi.trust,
                    protection=self.session.protection, own_identity=self.session.gsi_identity)
            except TransferCoreError:
                close_quietly(sock)
                raise
        self.data_socks.append(sock)
        if self.stop.is_set():
            close_quietly(sock)
            raise TransferAborted("transfer aborted")
        self.streams += 1
        return sock

    async def accept_one(self, buffer_size: int | None) -> socket.socket:
        if self.listener is None:
            raise NoDataConnection("No passive listener; send PASV first.")
        sock = await self.io(self.listener.accept, self.config.data_timeout, self.stop)
        return self._track(sock, buffer_size)

    async def connect_many(
        self, addresses: tuple[HostPort, ...], count: int, buffer_size: int | None
    ) -> list[socket.socket]:
        async def one(hp: HostPort) -> socket.socket:
            try:
                sock = await self.io(connect, hp, self.config.data_timeout)
            except OSError as exc:
                raise NoDataConnection(f"Cannot open data connection to {hp.host}:{hp.port}: {exc}") from None
            return self._track(sock, buffer_size, initiator=True)

        targets = [addresses[i % len(addresses)] for i in range(max(count, 1))]
        return list(await asyncio.gather(*(one(hp) for hp in targets)))

    async def sending_socks(self, data: Any, mode: str, count: int, buffer_size: int | None) -> list[socket.socket]:
        """Connections to send on: the cached ones of a MODE E session, else new ones."""
        if mode == "E":
            cached = self.cache.take("out", data)
            if cached:
                return [self._track(s, buffer_size) for s in cached]
        else:
            self.cache.drop()
        if isinstance(data, Active):
            return await self.connect_many(
                data.addresses, min(count, self.config.max_data_connections), buffer_size
            )
        return [await self.accept_one(buffer_size)]

    # -- transfers --------------------------------------------------------------------------

    async def run_transfer(self, action: Store | Retrieve | Listing) -> None:
        self.keep = []
        try:
            if isinstance(action, Store):
                await self.store(action)
            elif isinstance(action, Retrieve):
                await self.retrieve(action)
            else:
                await self.send_listing(action)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a reply
            self.keep = []
            log.info("transfer failed: %s", exc)
            await self.send(self.session.transfer_failed(exc, aborted=self.aborted))
        finally:
            kept = {id(s) for s in self.keep}
            for sock in self.data_socks:
                if id(sock) not in kept:
                    close_quietly(sock)
            self.data_socks = []
            direction = "in" if isinstance(action, Store) else "out"
            if self.keep:
                self.cache.keep(direction, action.data, self.keep)
            else:
                self.cache.drop()
            self.keep = []
            if self.listener is not None and not self.cache:
                self.listener.close()
                self.listener = None
            self.session.transfer_done(cached=bool(self.cache))
            self.transfer = None
            # The transfer's buffers go back soon (see .memory).  On the event loop: a
            # collection holds the interpreter lock wherever it runs, and a worker
            # thread would add two thread hand-offs.
            release_garbage()

    async def store(self, act: Store) -> None:
        # resolved once for the whole command (a stat per component under --root)
        local = self._local_path(act.path)
        key = self._upload_key(act.path, local)
        owner = f"an upload from {self.peer_host}"
        # Held until the clean-up below is done: a retry must not meet this upload's partial or spool.
        await self.uploads.acquire(
            key, owner, min(self.config.data_timeout, UPLOAD_WAIT), self._wait_released, act.path
        )
        try:
            await self._store(act, local)
        finally:
            self.uploads.release(key)

    def _local_path(self, path: str) -> str | None:
        try:
            return self.driver.local_path(self.dpath(path))
        except TransferCoreError:
            return None

    def _upload_key(self, path: str, local: str | None) -> str:
        return f"{self.driver.name}://{self.driver.authority}{local or self.dpath(path)}"

    async def _wait_released(self, released: Callable[[], bool], timeout: float) -> bool:
        # Polled on the event loop: no pool thread sits waiting for another session.
        deadline = time.monotonic() + timeout
        while not released() and time.monotonic() < deadline and not self.stop.is_set():
            await asyncio.sleep(0.01)
        if self.stop.is_set():
            raise TransferAborted("transfer aborted on request")
        return released()

    async def _existing_size(self, act: Store) -> int | None:
        """The size of the object an ``ESTO`` updates; ``None`` when there is none yet."""
        try:
            info = await self.io(self.driver.stat, self.dpath(act.path))
        except NotFound:
            return None
        if info.is_dir:
            raise IsADirectory(f"{act.path} is a directory.")
        return info.size

    async def _store(self, act: Store, local: str | None) -> None:
        plan = plan_store(
            act,
            self.driver.capabilities(),
            self.dpath(act.path),
            window=self.config.reorder_window,
            # (only an upload without ALLO is spooled: the others need not ask the driver)
            durable_spool=act.alloc is None and (self.config.spool_dir is not None or local is not None),
            existing=await self._existing_size(act) if act.update else None,
        )
        if plan.size is None:
            await self.store_spooled(act, plan, local)
            return
        length = plan.size
        progress = self.progress = Progress()
        lock = asyncio.Lock()
        opened: Opened[Writer] = Opened()
        ticket = self.committer.ticket()
        # Blocks that wait (in the window, in the driver's staging) are kept in the buffers they
        # were received into, not copied; the pool ends with the upload.  Not for a small file:
        # a mapping made for each of its few blocks costs more than copying them.
        self.blocks = BlockPool(keep=plan.window) if plan.ordered and length >= POOL_FROM else None

        def start(writer: Writer) -> None:
            # markers name the upload's slice in data offsets
            opened.markers = RestartMarkers(writer.resumed, view=functools.partial(plan.marker, length=length))
            self._post(self.session.transfer_started(act))
            if act.mode == "E":
                opened.timer = self._markers_later(writer, opened.markers, lock, progress, act)

        completed = False
        try:
            first = self._one_trip_connection(act, plan, length)
            if first is not None:
                # A small file on the session's one cached connection: the object is opened
                # and its data received in one trip to a worker thread, not two.
                link = TripLink(self.stop)
                tracker = await self._receive_with_trip(
                    act, plan, first, link, functools.partial(self._open_and_receive, plan, length, act),
                    functools.partial(opened.open, start=start), progress,
                )
                if self.stop.is_set():
                    raise TransferAborted("transfer aborted on request")  # as the general way's receive()
                writer = opened.ready()[0]
                received = self._received(plan, writer, tracker, link.window)
            else:
                opened.open(
                    await self.io(self.driver.open_write, plan.target, plan.object_size(length), plan.resume()), start
                )
                before, _ = plan.kept(length)
                writer = opened.ready()[0]
                await self._copy_kept(plan, writer, before - writer.resumed)
                received = await self.receive(act, plan, writer, progress)
            writer, markers = opened.ready()
            check_complete(plan, writer.resumed, received)
            _, after = plan.kept(length)
            await self._copy_kept(plan, writer, after - writer.resumed)
            await opened.stop_timer()
            async with lock:
                # durable and published together with the uploads of other sessions that end now
                await ticket.commit(writer, plan.object_size(length))
                if plan.renames:
                    await self.io(self.driver.rename, plan.target, plan.path)
                final = markers.final(whole_object(plan, length)) if act.mode == "E" else None
            completed = True
            # the last 111 and the 226 in one write (no marker can come between: the timer is stopped)
            await self.send(*(reply for reply in (final, self.session.transfer_finished(act)) if reply is not None))
        finally:
            self.blocks = None
            ticket.release()
            await opened.stop_timer()
            if not completed and opened.writer is not None and opened.markers is not None:
                await self._keep_partial(opened.writer, opened.markers, lock, act.mode, plan)

    async def _receive_with_trip(
        self,
        act: Store,
        plan: StorePlan,
        first: socket.socket,
        link: TripLink,
        opener: Callable[..., bool],
        on_open: Callable[[Any], None],
        progress: Progress,
        *,
        shift: int | None = None,
    ) -> UploadTracker:
        """Receive an upload whose first connection is ``opener``'s trip (it opens the destination,
        calls ``on_open`` on this loop, receives ``first``); the others beside it, as they come."""
        tracker = UploadTracker()
        posted = self._on_loop(on_open)

        async def trip(sock: socket.socket) -> bool:
            keep: bool = await self.io(opener, sock, progress, posted, link, tracker)
            return keep

        try:
            await self.receive_mode_e(
                act, plan, link.deliver, progress, None, shift=shift, tracker=tracker, cached=[], first=(first, trip)
            )
        finally:
            self.window = None
        return tracker

    @staticmethod
    def _on_loop(fn: Callable[[T], object]) -> Callable[[T], object]:
        """``fn`` for a worker thread to call: it runs on this event loop, before the thread's result is seen."""
        loop = asyncio.get_running_loop()
        return lambda value: loop.call_soon_threadsafe(fn, value)

    def _one_trip_connection(self, act: Store, plan: StorePlan, length: int | None) -> socket.socket | None:
        """The cached connection a MODE E upload is received on in its opening trip, if it may be.

        ``length``: the announced size (``None``: spooled; the spool takes any size)."""
        if act.mode != "E":
            return None
        if length is not None and (length > ONE_TRIP_LIMIT or any(plan.kept(length))):
            return None
        if len(self.cache) != 1:
            return None
        socks = self.cache.take("in", act.data)
        return self._track(socks[0], act.buffer_size) if socks else None

    def _open_and_receive(
        self,
        plan: StorePlan,
        length: int,
        act: Store,
        sock: socket.socket,
        progress: Progress,
        started: Callable[[Writer], object],
        link: TripLink,
        tracker: UploadTracker,
    ) -> bool:
        """In a worker thread: open the object, have the 150 sent, receive ``sock`` to its EOD.

        The first connection of :meth:`receive_mode_e`: its errors are judged
        there; True when ``sock`` may be cached.
        """
        try:
            writer = self.driver.open_write(plan.target, plan.object_size(length), plan.resume())
            deliver, window = self._deliverer(plan, writer)
        except BaseException:
            link.failed()
            raise
        self.window = window  # for an ABOR to wake connections waiting at it
        link.opened(deliver, window)
        started(writer)
        return receive_mode_e(
            sock, deliver, tracker, progress, self.stop,
            max_block=self.config.max_block, piece=plan.piece, shift=act.shift, pool=self.blocks,
        )

    def _deliverer(self, plan: StorePlan, writer: Writer) -> tuple[Deliver, ReorderWindow | None]:
        """Where received blocks go: through a reorder window for a driver that needs order, else the writer."""
        assert plan.size is not None
        if plan.ordered:
            window = ReorderWindow(
                self._expected(plan, writer), writer.write, capacity=plan.window,
                stall_timeout=self.config.data_timeout,
                # (a writer not derived from Writer may lack it: the window then releases after write())
                handover=getattr(writer, "write_owned", None),
            )
            return window.put, window
        slots = threading.BoundedSemaphore(plan.writers)
        bounded = SliceWriter(writer, plan.offset + plan.size)

        def deliver(offset: int, data: bytes | bytearray | memoryview) -> None:
            with slots:
                bounded.write(offset, data)

        return deliver, None

    @staticmethod
    def _expected(plan: StorePlan, writer: Writer) -> RangeSet:
        assert plan.size is not None
        return plan.slice(plan.size) - writer.resumed

    def _received(self, plan: StorePlan, writer: Writer, tracker: UploadTracker, window: ReorderWindow | None) -> RangeSet:
        return self._expected(plan, writer) - window.missing() if window is not None else tracker.received()

    async def _copy_kept(self, plan: StorePlan, writer: Writer, ranges: RangeSet) -> None:
        if ranges:
            await self.io(copy_kept, self.driver, plan.path, plan.base or 0, writer, ranges, self.stop)

    async def receive(self, act: Store, plan: StorePlan, writer: Writer, progress: Progress) -> RangeSet:
        """Receive the upload into ``writer``; the ranges (object offsets) that reached it."""
        assert plan.size is not None
        if act.mode == "S":
            self.cache.drop()
            # MODE S resumes a prefix of the data; they land from the ESTO offset on
            start = plan.offset + plan.marker(writer.resumed, plan.size).prefix_end()
            if isinstance(act.data, Active):
                sock = (await self.connect_many(act.data.addresses[:1], 1, act.buffer_size))[0]
            else:
                sock = await self.accept_one(act.buffer_size)
            bounded = SliceWriter(writer, plan.offset + plan.size)
            end = await self.io(receive_stream, sock, bounded, start, progress, self.stop)
            received = RangeSet.span(start, end)
        else:
            deliver, window = self._deliverer(plan, writer)
            self.window = window  # for an ABOR to wake connections waiting at it
            try:
                tracker = await self.receive_mode_e(act, plan, deliver, progress, window)
            finally:
                self.window = None
            received = self._received(plan, writer, tracker, window)
        if self.stop.is_set():
            raise TransferAborted("transfer aborted on request")
        return received

    async def store_spooled(self, act: Store, plan: StorePlan, local: str | None) -> None:
        lock = asyncio.Lock()
        progress = self.progress = Progress()
        opened: Opened[Spool] = Opened()
        stored = False
        #: the object written from the spool, until its commit takes it over
        written: tuple[Writer, int] | None = None
        ticket = self.committer.ticket()

        def start(spool: Spool) -> None:
            # the upload is known storable and its spool open
            opened.markers = RestartMarkers(spool.resumed)
            self._post(self.session.transfer_started(act, spooled=True))
            if act.mode == "E":
                opened.timer = (
                    self._markers_later(spool, opened.markers, lock, progress, act) if spool.restartable
                    else self._perf_later(progress, act.perf_interval)
                )

        try:
            first = self._one_trip_connection(act, plan, None)
            if first is not None:
                # On the session's one cached connection: the checks, the spool, its data and (a spool
                # still in memory) the object written, in one trip to a worker thread.
                link = TripLink(self.stop)
                try:
                    # the spool holds the data at their data offsets: an ESTO offset applies when it is stored
                    await self._receive_with_trip(
                        act, plan, first, link, functools.partial(self._spool_and_receive, plan, local, act),
                        functools.partial(opened.open, start=start), progress, shift=0,
                    )
                finally:
                    written = link.written  # dropped below if the upload goes no further
                opened.ready()
                if link.store_error is not None:
                    raise link.store_error
            else:
                # one trip to a worker thread: the checks and the spool
                opened.open(await self.io(self._open_spool, plan, local), start)
                spool = opened.ready()[0]
                if act.mode == "E":
                    # the spool holds the data at their data offsets: an ESTO offset applies when it is stored
                    await self.receive_mode_e(act, plan, spool.write, progress, None, shift=0)
                else:
                    self.cache.drop()
                    sock = await self.accept_one(act.buffer_size) if not isinstance(act.data, Active) else (
                        await self.connect_many(act.data.addresses[:1], 1, act.buffer_size)
                    )[0]
                    await self.io(receive_stream, sock, spool, spool.resumed.prefix_end(), progress, self.stop)
            spool = opened.ready()[0]
            if self.stop.is_set():
                raise TransferAborted("transfer aborted on request")
            await opened.stop_timer()
            if written is None:
                written = await self.io(write_spooled, self.driver, spool, plan.path, plan, self.stop)
            (writer, length), written = written, None
            try:
                # durable and published together with the uploads of other sessions that end now
                await ticket.commit(writer, plan.object_size(length))
                if plan.renames:
                    await self.io(self.driver.rename, plan.target, plan.path)
            except BaseException:
                await self.io(drop_spooled, self.driver, writer, plan)
                raise
            stored = True
            if spool.in_memory:
                spool.discard()  # only a descriptor to close: no trip to a worker thread
            else:
                await self.io(spool.discard)  # unlinking a file of dirty pages can take milliseconds
            await self.send(self.session.transfer_finished(act))
        finally:
            ticket.release()
            await opened.stop_timer()
            if written is not None:
                # written in the opening trip, then the upload failed (an abort): the copy goes
                with contextlib.suppress(Exception):
                    await self.io(drop_spooled, self.driver, written[0], plan)
            if not stored and opened.writer is not None:
                spool = opened.writer
                # Keep what is durable for a REST, and say what it is first.
                if opened.markers is not None:
                    markers = opened.markers
                    async with lock:
                        with contextlib.suppress(Exception):
                            reply = await self.io(markers.take, spool)
                            if reply is not None and act.mode == "E":
                                await self.send(reply)
                spool.close()

    def _spool_and_receive(
        self,
        plan: StorePlan,
        local: str | None,
        act: Store,
        sock: socket.socket,
        progress: Progress,
        started: Callable[[Spool], object],
        link: TripLink,
        tracker: UploadTracker,
    ) -> bool:
        """In a worker thread: the spool of an upload without ``ALLO``, the 150, ``sock``'s data into it.

        When every byte is in and the spool is still in memory, the object
        is written as well (the spool kept in memory meanwhile: a marker due
        then names nothing new) and left in ``link`` for the event loop to
        complete with the others.  The first connection of
        :meth:`receive_mode_e`: True when ``sock`` may be cached.
        """
        try:
            spool = self._open_spool(plan, local)
        except BaseException:
            link.failed()
            raise
        link.opened(spool.write, None)
        started(spool)
        keep = receive_mode_e(
            sock, spool.write, tracker, progress, self.stop,
            max_block=self.config.max_block, piece=plan.piece, shift=0,
        )
        if tracker.complete and not self.stop.is_set():
            with spool.pinned_in_memory() as in_memory:
                if in_memory:
                    try:
                        link.written = write_spooled(self.driver, spool, plan.path, plan, self.stop)
                    except BaseException as exc:  # noqa: BLE001 - raised on the event loop, after the receive
                        link.store_error = exc
        return keep

    def _open_spool(self, plan: StorePlan, local: str | None) -> Spool:
        """The spool of an upload without ALLO (``local``: its local path). Blocking."""
        return open_spool(self.driver, plan.path, local, spool_dir=self.config.spool_dir, resume=plan.restart,
                          limit=self.config.max_spool, memory_limit=self.config.max_spool_memory)

    def _perf_later(self, progress: Progress, every: float) -> LateTask:
        """112 markers every ``every`` seconds from now on, the first one ``every`` from now."""

        async def perf_loop() -> None:
            while True:
                await self.send(perf_marker(PerfMarker(time.time(), 0, progress.total, 1)))
                await asyncio.sleep(every)

        return LateTask(every, perf_loop)

    async def _keep_partial(
        self,
        writer: Writer,
        markers: RestartMarkers,
        lock: asyncio.Lock,
        mode: str,
        plan: StorePlan,
    ) -> None:
        # Tell the client what is safe before the error reply, then keep it for a restart.
        async with lock:
            with contextlib.suppress(Exception):
                reply = await self.io(markers.take, writer)
                if mode == "E" and reply is not None:
                    await self.send(reply)
            durable = markers.cursor.durable
            with contextlib.suppress(Exception):
                await self.io(writer.abort)
            if plan.renames and not durable:
                # Nothing to restart from: leave no empty partial object behind.
                with contextlib.suppress(Exception):
                    await self.io(self.driver.discard_partial, plan.target)
                    await self.io(self.driver.remove, plan.target)

    def _markers_later(
        self, writer: Durable, markers: RestartMarkers, lock: asyncio.Lock, progress: Progress, act: Store
    ) -> LateTask:
        """The upload's 111 and 112 markers on their schedule from now; nothing runs before the first is due."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        schedule = MarkerSchedule(now, act.restart_interval, act.perf_interval)
        return LateTask(
            max(0.0, schedule.next_due() - now), lambda: self.marker_loop(writer, markers, lock, progress, schedule)
        )

    async def marker_loop(
        self,
        writer: Durable,
        markers: RestartMarkers,
        lock: asyncio.Lock,
        progress: Progress,
        schedule: MarkerSchedule,
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(0.0, schedule.next_due() - loop.time()))
            perf, restart = schedule.due(loop.time())
            if perf:
                await self.send(perf_marker(PerfMarker(time.time(), 0, progress.total, 1)))
            if restart:
                async with lock:
                    reply = await self.io(markers.take, writer)
                    if reply is not None:
                        await self.send(reply)

    async def receive_mode_e(
        self,
        act: Store,
        plan: StorePlan,
        deliver: Callable[[int, memoryview], None],
        progress: Progress,
        window: ReorderWindow | None,
        *,
        shift: int | None = None,
        tracker: UploadTracker | None = None,
        cached: list[socket.socket] | None = None,
        first: tuple[socket.socket, Callable[[socket.socket], Awaitable[bool]]] | None = None,
    ) -> UploadTracker:
        """Run every data connection of one MODE E upload until all announced EODs arrived.

        ``cached`` (the session's cached connections taken, by default) are
        received on first.  ``first``: a cached connection and how it is
        received instead (the trip that also opens the destination); the
        connections the client adds meanwhile are accepted and received beside it.
        """
        tracker = tracker if tracker is not None else UploadTracker()
        errors: list[BaseException] = []
        running: dict[int, socket.socket] = {}
        cacheable: list[socket.socket] = []

        def fail(exc: BaseException) -> None:
            errors.append(exc)
            self.stop.set()
            # (the trip's window is known once its thread opened the destination)
            stopping = window if window is not None else self.window
            if stopping is not None:
                stopping.stop(exc if isinstance(exc, Exception) else None)
            for s in list(self.data_socks):
                wake(s)

        receive = functools.partial(
            receive_mode_e, max_block=self.config.max_block, piece=plan.piece, pool=self.blocks,
            shift=act.shift if shift is None else shift,
        )

        async def conn(sock: socket.socket, run: Callable[[socket.socket], Awaitable[bool]] | None = None) -> None:
            running[id(sock)] = sock
            try:
                if run is not None:
                    keep = await run(sock)
                else:
                    keep = await self.io(receive, sock, deliver, tracker, progress, self.stop)
                if keep:
                    cacheable.append(sock)
            except BaseException as exc:  # noqa: BLE001
                if not errors and not tracker.complete:
                    fail(exc)
            finally:
                running.pop(id(sock), None)

        if cached is None:
            cached = [self._track(s, act.buffer_size) for s in self.cache.take("in", act.data)]
        socks = cached
        if isinstance(act.data, Active) and not socks and first is None:
            socks = await self.connect_many(act.data.addresses, len(act.data.addresses), act.buffer_size)
        if isinstance(act.data, Passive) and self.listener is None and not socks and first is None:
            raise NoDataConnection("No passive listener; send PASV first.")
        pending = {asyncio.create_task(conn(s)) for s in socks}
        if first is not None:
            pending.add(asyncio.create_task(conn(*first)))
        opened = len(pending)
        loop = asyncio.get_running_loop()
        accept: asyncio.Future[tuple[socket.socket, Any]] | None = None
        listener = self.listener if isinstance(act.data, Passive) else None
        quiet_since = loop.time()
        # On cached connections a small file is usually in before a new connection
        # could matter: accepting starts a moment later (one that arrives meanwhile
        # waits in the backlog), which saves each such upload an accept attempt and
        # the listener's registration with the event loop.
        accept_from = quiet_since + CACHED_ACCEPT_DELAY if pending else quiet_since
        try:
            while not tracker.complete and not errors and not self.stop.is_set():
                now = loop.time()
                if listener is not None and accept is None and (now >= accept_from or not pending):
                    listener.sock.setblocking(False)
                    accept = asyncio.ensure_future(loop.sock_accept(listener.sock))
                waiting: set[asyncio.Future[Any]] = set(pending)
                if accept is not None:
                    waiting.add(accept)
                if not waiting:
                    break
                # Short waits: an abort (self.stop) is noticed at once, even with no data connection
                # open, so the upload ends and lets a retry of its destination in.
                timeout = STOP_POLL
                if listener is not None and accept is None:
                    timeout = min(STOP_POLL, max(0.0, accept_from - now))
                done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if done:
                    quiet_since = loop.time()
                elif pending or loop.time() - quiet_since < self.config.data_timeout:
                    continue
                else:
                    raise DataTimeout(
                        f"MODE E upload stalled: no data connection within {self.config.data_timeout:g} s, "
                        f"{tracker.state()}",
                        hint="the sender must end the transfer with an EOF block giving the EOD count",
                    )
                pending -= done
                if accept is not None and accept in done:
                    try:
                        sock, _ = accept.result()
                    except OSError as exc:
                        raise TransferAborted(f"data listener closed: {exc}") from None
                    finally:
                        accept = None
                    sock.setblocking(True)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    if opened >= self.config.max_data_connections:
                        close_quietly(sock)
                        fail(
                            TooManyDataConnections(
                                f"The client opened more than {self.config.max_data_connections} data "
                                "connections for one transfer; refusing the transfer.",
                                hint="use fewer parallel streams (-p)",
                            )
                        )
                        break
                    opened += 1
                    pending.add(asyncio.create_task(conn(self._track(sock, act.buffer_size))))
        finally:
            if accept is not None:
                accept.cancel()
                with contextlib.suppress(BaseException):
                    await accept
        if pending:
            # Every announced EOD arrived (or the transfer failed).  A connection
            # that carried the last EOD is returning; any other still open
            # carries nothing of this transfer and is closed.
            _, pending = await asyncio.wait(pending, timeout=0.5)
            for s in list(running.values()):
                wake(s)
            if pending:
                await asyncio.wait(pending)
        if errors:
            if not tracker.complete or not isinstance(errors[0], (OSError, TransferAborted)):
                raise errors[0]
        if self.stop.is_set() and not tracker.complete:
            raise TransferAborted("transfer aborted on request")
        if not tracker.complete:
            raise RemoteProtocolError(
                "the data connections ended without the EOF/EOD blocks that close a MODE E transfer"
            )
        self.keep = cacheable
        return tracker

    async def retrieve(self, act: Retrieve) -> None:
        reader = await self.io(self.driver.open_read, self.dpath(act.path))
        perf: LateTask | None = None
        try:
            plan = plan_retrieve(act, reader.size)
            progress = self.progress = Progress()
            await self.send(self.session.transfer_started(act))
            if act.perf_markers:
                perf = self._perf_later(progress, act.perf_markers)
            socks = await self.sending_socks(act.data, act.mode, act.parallelism, act.buffer_size)
            if act.mode == "S":
                await self.io(send_stream, socks[0], reader, plan.start, plan.end, progress, self.stop)
            else:
                caps = self.driver.capabilities()
                block = max(caps.min_block_size, min(SEND_BLOCK, caps.preferred_block_size))
                sender = ModeESender(reader, plan.ranges, block, plan.base, ordered=caps.ordered_writes)
                await asyncio.gather(
                    *(
                        self.io(sender.run, s, progress, self.stop, len(socks) if i == 0 else None)
                        for i, s in enumerate(socks)
                    )
                )
                self.keep = socks
            if self.stop.is_set():
                raise TransferAborted("transfer aborted on request")
            if perf is not None:
                await perf.stop()
                await self.send(perf_marker(PerfMarker(time.time(), 0, progress.total, 1)))
            await self.send(self.session.transfer_finished(act))
        finally:
            if perf is not None:
                await perf.stop()
            reader.close()

    async def send_listing(self, act: Listing) -> None:
        body = await self.io(
            functools.partial(
                listing.render, self.driver, self.dpath(act.path), act.path, act.verb, writable=self.session.writable
            )
        )
        await self.send(self.session.transfer_started(act))
        socks = await self.sending_socks(act.data, act.mode, 1, None)
        if act.mode == "S":
            await self.io(socks[0].sendall, body)
        else:
            payload = (encode_block(0, body) if body else b"") + encode_eof_eod(1, close=False)
            await self.io(socks[0].sendall, payload)
            self.keep = socks
        await self.send(self.session.transfer_finished(act))
