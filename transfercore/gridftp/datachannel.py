"""Data connections: blocking sockets run in worker threads.

The hot path stays out of the event loop: each data connection has its own
thread that ``recv_into``s a reused buffer and hands it to the driver's
``Writer.write`` (or reads from a ``Reader`` and ``sendmsg``s), so the GIL is
released for both the socket and the storage call and MODE E connections
proceed in parallel.  Framing validation is the sans-I/O code of
:mod:`.modee`.
"""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..blockpool import MIN_BLOCK, BlockPool, Release
from ..contract import Reader
from ..driverkit import read_exact
from ..errors import TransferAborted, TransferCoreError
from ..ranges import RangeSet
from ..reorder import ReorderWindow
from .errors import DataTimeout
from .hostport import HostPort
from .modee import (
    HEADER_SIZE,
    Data,
    EndOfData,
    ModeEDecoder,
    encode_eod,
    encode_eof_eod,
    encode_header,
)
from .upload import UploadTracker

STREAM_BUFFER = 4 * 1024 * 1024
#: MODE S upload block: small enough that the bytes just received are still
#: in this core's cache when the write copies them into the page cache.
RECEIVE_BLOCK = 1024 * 1024
SEND_BLOCK = 1024 * 1024
#: MODE S downloads: blocks read ahead of the socket by the reading thread.
PIPELINE_DEPTH = 3


class Progress:
    """Bytes moved, per connection, readable from another thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0

    def add(self, n: int) -> None:
        with self._lock:
            self.total += n


def set_buffers(sock: socket.socket, size: int | None) -> None:
    if size:
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, size)
            except OSError:
                pass  # the kernel caps it; not worth failing the transfer


class PassiveListener:
    """A listening socket on a port of the allowed range."""

    def __init__(self, host: str, ports: range | None) -> None:
        self.sock = _bind(host, ports)
        self.sock.listen(64)
        self.host = host
        self.port = self.sock.getsockname()[1]

    def address(self) -> HostPort:
        return HostPort(self.host, self.port)

    def accept(self, timeout: float, stop: threading.Event | None = None) -> socket.socket:
        deadline_slices = max(1, int(timeout / 0.2))
        self.sock.settimeout(0.2)
        for _ in range(deadline_slices):
            if stop is not None and stop.is_set():
                raise TransferAborted("transfer aborted while waiting for a data connection")
            try:
                conn, _addr = self.sock.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                raise TransferAborted(f"data listener closed: {exc}") from None
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return conn
        raise DataTimeout(
            f"no data connection arrived within {timeout:.0f} s",
            hint="check that the client can reach the passive port range",
        )

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _bind(host: str, ports: range | None) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    candidates = list(ports) if ports else [0]
    if ports:
        # Start at a varying place so concurrent sessions do not all race for the first port.
        start = threading.get_ident() % len(candidates)
        candidates = candidates[start:] + candidates[:start]
    last: OSError | None = None
    for port in candidates:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.bind((host, port))
            return sock
        except OSError as exc:
            last = exc
            sock.close()
    raise TransferCoreError(f"no free passive port in {ports}: {last}", hint="widen --passive-ports")


def connect(hp: HostPort, timeout: float) -> socket.socket:
    sock = socket.create_connection((hp.host, hp.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _recv_exact(sock: socket.socket, view: memoryview, stop: threading.Event) -> int:
    """Fill ``view``; returns how many bytes arrived before the peer closed."""
    got = 0
    n = len(view)
    while got < n:
        if stop.is_set():
            raise TransferAborted("transfer aborted")
        try:
            k = sock.recv_into(view[got:])
        except TimeoutError:
            raise DataTimeout(
                "the data connection was silent for too long", hint="check the client and network"
            ) from None
        if k == 0:
            return got
        got += k
    return got


def receive_stream(
    sock: socket.socket, writer: Any, start: int, progress: Progress, stop: threading.Event
) -> int:
    """MODE S: the data are the bytes until the peer closes; returns the end offset.

    One thread receives a block and writes it, as a MODE E connection does.
    A second thread writing behind a queue of large buffers measured slower
    on a two-core machine (up to twice the CPU time): the data crossed cores
    and caches between the two copies, and the socket's own receive buffer
    already lets the sender run ahead while a write is in progress.
    """
    buf = bytearray(RECEIVE_BLOCK)
    view = memoryview(buf)
    offset = start
    while True:
        n = _recv_exact(sock, view, stop)
        if n:
            writer.write(offset, view[:n])
            progress.add(n)
            offset += n
        if n < len(buf):
            return offset


Deliver = Callable[[int, memoryview], None]


def receive_mode_e(
    sock: socket.socket,
    deliver: Deliver,
    tracker: UploadTracker,
    progress: Progress,
    stop: threading.Event,
    *,
    max_block: int,
    piece: int,
    shift: int = 0,
    pool: BlockPool | None = None,
) -> bool:
    """Receive one MODE E connection's blocks until its EOD; True when it may be cached.

    The framing is :class:`~.modee.ModeEDecoder`'s: the header bytes go
    through it and it says how many data bytes to read next; they are read
    into one reused buffer, at most ``piece`` at a time, and handed to
    ``deliver`` as a view (the reorder window, or the writer).  With a
    ``pool``, a piece of at least :data:`~transfercore.blockpool.MIN_BLOCK`
    is read into a buffer of its own and given away instead:
    ``deliver(offset, view, release)`` (the receiver keeps it uncopied and
    releases it; see :mod:`transfercore.blockpool`).  A connection that ends
    before its EOD or in a block raises what the decoder decides.  Returns
    whether the sender left the connection open (EOD without CLOSE) for the
    session's next transfer.
    """
    decoder = ModeEDecoder(max_block=max_block)
    header = memoryview(bytearray(HEADER_SIZE))
    buf = memoryview(bytearray(0))
    cached = False
    while not decoder.done:
        want = decoder.wanted(piece)
        release: Release | None = None
        if decoder.in_block and not decoder.reading_header:
            if pool is not None and want >= MIN_BLOCK:
                given, release = pool.take(want)
                view = given[:want]
            else:
                if len(buf) < want:
                    buf = memoryview(bytearray(want))
                view = buf[:want]
        else:
            view = header[:want]
        got = _recv_exact(sock, view, stop)
        events = decoder.receive(view[:got], copy=False)
        if got < want:
            decoder.connection_closed()
            return False  # a cached connection the sender gave up on
        for event in events:
            if isinstance(event, Data):
                n = len(event.data)
                if release is None:
                    deliver(event.offset + shift, event.data)  # type: ignore[arg-type]
                else:
                    # (a data read yields one event: the decoder asked for no more than the block holds)
                    deliver(event.offset + shift, event.data, release)  # type: ignore[call-arg,arg-type]
                    release = None
                tracker.data(event.offset + shift, n)
                progress.add(n)
            else:
                if isinstance(event, EndOfData):
                    cached = not event.close
                tracker.end(event)
    return cached


class DataCache:
    """Data connections kept open between the transfers of one session (MODE E caching).

    ``direction`` is ``"in"`` (we receive) or ``"out"`` (we send); ``setup``
    is the session's data setup they were made for: a new PASV or PORT, or
    another direction, drops them.
    """

    def __init__(self) -> None:
        self.socks: list[socket.socket] = []
        self.direction: str | None = None
        self.setup: object | None = None

    def take(self, direction: str, setup: object) -> list[socket.socket]:
        """The cached connections for a transfer in ``direction`` over ``setup`` (emptied)."""
        if self.direction != direction or self.setup is not setup:
            self.drop()
            return []
        socks, self.socks = self.socks, []
        return socks

    def keep(self, direction: str, setup: object, socks: list[socket.socket]) -> None:
        if self.direction != direction or self.setup is not setup:
            self.drop()
        self.direction, self.setup = direction, setup
        self.socks.extend(socks)

    def drop(self) -> None:
        for sock in self.socks:
            close_quietly(sock)
        self.socks = []
        self.direction = self.setup = None

    def __len__(self) -> int:
        return len(self.socks)


def block_plan(ranges: RangeSet, block: int) -> Iterator[tuple[int, int]]:
    for r in ranges:
        pos = r.start
        while pos < r.end:
            n = min(block, r.end - pos)
            yield pos, n
            pos += n


def send_stream(
    sock: socket.socket, reader: Reader, start: int, end: int, progress: Progress, stop: threading.Event
) -> None:
    """MODE S: send ``[start, end)`` of the object; a second thread reads ahead."""
    ready: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=PIPELINE_DEPTH)
    halt = threading.Event()

    def read_loop() -> None:
        pos = start
        try:
            while pos < end and not halt.is_set():
                n = min(STREAM_BUFFER, end - pos)
                data = read_exact(reader.read(pos, n), pos, n, "the object being sent")
                ready.put(data)
                pos += n
            ready.put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the sending thread
            ready.put(exc)

    worker = threading.Thread(target=read_loop, name="gridftp-stream-reader", daemon=True)
    worker.start()
    try:
        while True:
            if stop.is_set():
                raise TransferAborted("transfer aborted")
            item = ready.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            sock.sendall(item)
            progress.add(len(item))
    finally:
        halt.set()
        while worker.is_alive():
            try:
                ready.get_nowait()
            except queue.Empty:
                worker.join(0.05)


class ModeESender:
    """Shared block queue of the connections of one MODE E download."""

    def __init__(
        self, reader: Reader, ranges: RangeSet, block: int, base: int = 0, *, ordered: bool = False
    ) -> None:
        self.reader = reader
        self.base = base  # ERET: sent offsets are relative to this file offset
        self._plan = block_plan(ranges, block)
        self._lock = threading.Lock()
        # A source that must be read in order (ordered_writes orders reads too):
        # reads take turns in ascending order, the sends still run in parallel.
        self._turns = ReorderWindow(ranges) if ordered else None

    def _next(self) -> tuple[int, int] | None:
        with self._lock:
            return next(self._plan, None)

    def run(
        self,
        sock: socket.socket,
        progress: Progress,
        stop: threading.Event,
        eof_count: int | None,
        close: bool = False,
    ) -> None:
        """Send blocks until none are left, then EOD (EOF+EOD with the count on one connection).

        Without ``close`` the EOD leaves out the CLOSE bit: the connection
        stays open for the session's next transfer.
        """
        while True:
            if stop.is_set():
                raise TransferAborted("transfer aborted")
            item = self._next()
            if item is None:
                break
            offset, n = item
            if self._turns is not None:
                with self._turns.turn(offset, n):
                    data = self.reader.read(offset, n)
            else:
                data = self.reader.read(offset, n)
            read_exact(data, offset, n, "the object being sent")
            _sendmsg_all(sock, [encode_header(0, n, offset - self.base), data])
            progress.add(n)
        sock.sendall(encode_eof_eod(eof_count, close=close) if eof_count else encode_eod(close=close))


def _sendmsg_all(sock: socket.socket, parts: list[bytes]) -> None:
    views = [memoryview(p) for p in parts]
    while views:
        sent = sock.sendmsg(views)
        while views and sent >= len(views[0]):
            sent -= len(views[0])
            views.pop(0)
        if views and sent:
            views[0] = views[0][sent:]


def close_quietly(sock: socket.socket | None) -> None:
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


__all__ = [
    "DataCache",
    "DataTimeout",
    "ModeESender",
    "PassiveListener",
    "Progress",
    "close_quietly",
    "connect",
    "receive_mode_e",
    "receive_stream",
    "send_stream",
]
