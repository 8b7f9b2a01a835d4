"""A fault-injecting TCP proxy for tests: what a bad network does to a connection, on demand.

A :class:`FaultProxy` listens on 127.0.0.1 and forwards each connection it
accepts to one target.  The :class:`Fault` of a connection (chosen by its
index, so the first connection can fail and the retry pass) says what
happens to it:

* ``PASS``: forwarded untouched;
* ``REFUSE``: reset at once, never forwarded (a port that refuses);
* ``STALL``: after ``after`` bytes in ``direction``, nothing more moves that
  way, the connection stays open (until the proxy stops, the other side
  closes, or ``stall_limit`` seconds pass, when it is reset);
* ``SLOW``: ``direction`` carries at most ``rate`` bytes per second;
* ``CUT``: after ``after`` bytes in ``direction``, both sides are closed
  cleanly (FIN), as a crashed middlebox or a closed laptop lid does;
* ``RESET``: the same, with a reset (RST, via ``SO_LINGER`` 0).

``direction`` is ``"up"`` (client to server) or ``"down"`` (server to client).

With ``connect_retry``, a client connecting while the target is down (a server
being restarted) is held until the target listens again, for at most that
many seconds, as a client's retry would be on a network with some delay:
tests that restart a server on its port need no race against its start-up.

Everything is bounded: at most ``max_connections`` connections (later ones
are refused), a stall lasts at most ``stall_limit`` seconds, :meth:`stop`
closes every socket and joins every thread within a deadline.

:class:`FtpFaultProxy` adds what an FTP or GridFTP control connection needs:
it rewrites the server's passive-mode replies (``227``, ``229``, and the
host-port lines of a striped ``SPAS`` reply) so that the client's data
connections also go through a proxy of their own, with their own faults.
"""

from __future__ import annotations

import contextlib
import enum
import re
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence

import attrs


class Kind(enum.Enum):
    PASS = "pass"
    REFUSE = "refuse"
    STALL = "stall"
    SLOW = "slow"
    CUT = "cut"
    RESET = "reset"


@attrs.frozen
class Fault:
    """What happens to one connection."""

    kind: Kind = Kind.PASS
    #: Bytes forwarded in ``direction`` before a stall, cut or reset.
    after: int = 0
    #: Bytes per second in ``direction`` for ``SLOW``.
    rate: int = 0
    direction: str = attrs.field(default="down", validator=attrs.validators.in_(("up", "down")))

    @classmethod
    def passes(cls) -> Fault:
        return cls()

    @classmethod
    def refuse(cls) -> Fault:
        return cls(Kind.REFUSE)

    @classmethod
    def stall(cls, after: int, direction: str = "down") -> Fault:
        return cls(Kind.STALL, after=after, direction=direction)

    @classmethod
    def slow(cls, rate: int, direction: str = "down") -> Fault:
        if rate <= 0:
            raise ValueError("a slow connection needs a rate above 0 bytes per second")
        return cls(Kind.SLOW, rate=rate, direction=direction)

    @classmethod
    def cut(cls, after: int, direction: str = "down") -> Fault:
        return cls(Kind.CUT, after=after, direction=direction)

    @classmethod
    def reset(cls, after: int, direction: str = "down") -> Fault:
        return cls(Kind.RESET, after=after, direction=direction)


@attrs.define
class Connection:
    """What happened to one proxied connection (for assertions)."""

    index: int
    fault: Fault
    up: int = 0
    down: int = 0
    #: How it ended: "" while open, else "closed by client", "closed by server" (whichever
    #: closed first), "refused", "cut", "reset", "stalled until stop", "stall limit",
    #: "broken" (a socket failed), "server unreachable", "proxy stopped".
    ended: str = ""
    #: Whether the fault fired (the byte count was reached).
    fired: bool = False


FaultPlan = Sequence[Fault] | Callable[[int], Fault]
Rewrite = Callable[[bytes], bytes]

_CHUNK = 65536


def _linger_reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def _prepare_reset(*socks: socket.socket) -> None:
    """Make the coming close() send RST, and wake any thread blocked in recv() on them
    (a close() under a blocked recv() would wait for it, and send nothing meanwhile)."""
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RD)


class FaultProxy:
    """Forward 127.0.0.1:``port`` to ``target`` with the faults of ``faults``
    (a list by connection index, or a function of it; :class:`Fault` ``PASS`` beyond)."""

    def __init__(
        self,
        target: tuple[str, int],
        faults: FaultPlan = (),
        *,
        max_connections: int = 64,
        stall_limit: float = 60.0,
        connect_timeout: float = 10.0,
        connect_retry: float = 0.0,
        rewrite_down: Callable[[], Rewrite] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.target = target
        self._faults = faults
        self.max_connections = max_connections
        self.stall_limit = stall_limit
        self.connect_timeout = connect_timeout
        #: Seconds to keep trying to reach a target that refuses (a server being restarted),
        #: holding the client's connection meanwhile; 0 resets the client at the first refusal.
        self.connect_retry = connect_retry
        #: Makes one line rewriter per connection for what the server sends (line-oriented protocols).
        self._rewrite_down = rewrite_down
        #: Called after every change of a connection (a parent proxy's waiters see it too).
        self._on_change = on_change
        self.connections: list[Connection] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self._live: dict[int, tuple[socket.socket, socket.socket, threading.Event]] = {}
        self._listener: socket.socket | None = None
        self.port = 0

    # -- life ------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._spawn(self._accept_loop, "faultproxy-accept")
        return self

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def stop(self, timeout: float = 10.0) -> None:
        """Close the listener and every connection, and join every thread (within ``timeout``)."""
        self._stopped.set()
        with self._lock:
            sockets = list(self._sockets)
            self._changed.notify_all()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept loop
            with contextlib.suppress(OSError):
                self._listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            for conn in self.connections:
                if not conn.ended:
                    conn.ended = "proxy stopped"

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_faults(self, faults: FaultPlan) -> None:
        """Faults for connections accepted from now on (indexes keep counting from 0 as before)."""
        with self._lock:
            self._faults = faults

    def trip(self, index: int, kind: Kind = Kind.RESET) -> bool:
        """Cut or reset connection ``index`` now (at a moment the test chose, e.g. once
        :meth:`wait_for` saw enough bytes move); False if it is not open."""
        if kind not in (Kind.CUT, Kind.RESET):
            raise ValueError(f"trip() cuts or resets a connection, it cannot {kind.value} it")
        with self._lock:
            live = self._live.get(index)
            if live is None or self.connections[index].ended:
                return False
        client, server, done = live
        conn = self.connections[index]
        self._note(conn, fired=True)
        self._fire(Fault(kind), conn, server, client, done)
        return True

    def wait_for(self, predicate: Callable[[list[Connection]], bool], timeout: float = 30.0) -> bool:
        """Wait until ``predicate(connections)`` holds (checked on every change), at most ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.connections):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    # -- inside ------------------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _fault_for(self, index: int) -> Fault:
        plan = self._faults
        if callable(plan):
            return plan(index)
        return plan[index] if index < len(plan) else Fault()

    def _note(self, conn: Connection, **changes: object) -> None:
        with self._changed:
            for key, value in changes.items():
                if key in ("up", "down"):
                    setattr(conn, key, getattr(conn, key) + value)
                elif key == "ended":
                    if not conn.ended:
                        conn.ended = str(value)
                else:
                    setattr(conn, key, value)
            self._changed.notify_all()
        if self._on_change is not None:
            self._on_change()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopped.is_set():
            try:
                ready, _, _ = select.select([self._listener], [], [], 1.0)
                if not ready:
                    continue
                client, _addr = self._listener.accept()
            except OSError:
                return
            with self._changed:
                index = len(self.connections)
                fault = self._fault_for(index) if index < self.max_connections else Fault.refuse()
                conn = Connection(index, fault)
                self.connections.append(conn)
                self._changed.notify_all()
            if fault.kind is Kind.REFUSE:
                self._note(conn, ended="refused")  # noted first: the reset wakes the client
                _linger_reset(client)
                continue
            self._spawn(self._serve, f"faultproxy-{index}", client, conn)

    def _connect(self) -> socket.socket | None:
        deadline = time.monotonic() + self.connect_retry
        while True:
            try:
                return socket.create_connection(self.target, timeout=self.connect_timeout)
            except OSError:
                # polling the target, with a deadline, until it listens again
                if time.monotonic() >= deadline or self._stopped.wait(0.05):
                    return None

    def _serve(self, client: socket.socket, conn: Connection) -> None:
        server = self._connect()
        if server is None:
            self._note(conn, ended="server unreachable")  # noted first: the reset wakes the client
            _linger_reset(client)
            return
        server.settimeout(None)
        with self._lock:
            if self._stopped.is_set():
                server.close()
                client.close()
                return
            self._sockets.update((client, server))
            done = threading.Event()
            self._live[conn.index] = (client, server, done)
        rewrite = self._rewrite_down() if self._rewrite_down is not None else None
        up = threading.Thread(target=self._pump, args=(client, server, conn, "up", None, done), daemon=True)
        up.start()
        self._pump(server, client, conn, "down", rewrite, done)
        up.join(self.stall_limit + 5)
        with self._lock:
            self._sockets.discard(client)
            self._sockets.discard(server)
            self._live.pop(conn.index, None)
        for sock in (client, server):
            with contextlib.suppress(OSError):
                sock.close()

    def _pump(self, src: socket.socket, dst: socket.socket, conn: Connection, direction: str,
              rewrite: Rewrite | None, done: threading.Event) -> None:
        fault = conn.fault if conn.fault.direction == direction else Fault()
        moved = 0
        clock: list[float] = []
        try:
            while not done.is_set():
                chunk = src.recv(_CHUNK)
                if done.is_set():
                    return  # the other direction ended the connection (cut, reset)
                if not chunk:
                    if self._stopped.is_set():
                        return  # stop() shut this socket: the proxy's end, recorded by a fault or stop()
                    self._end(conn, "closed by client" if direction == "up" else "closed by server", src, dst, done)
                    return
                if rewrite is not None:
                    chunk = rewrite(chunk)
                if fault.kind in (Kind.STALL, Kind.CUT, Kind.RESET) and moved + len(chunk) >= fault.after:
                    head = chunk[: max(0, fault.after - moved)]
                    if head:
                        dst.sendall(head)
                        moved += len(head)
                        self._note(conn, **{direction: len(head)})
                    self._note(conn, fired=True)
                    self._fire(fault, conn, src, dst, done)
                    return
                if fault.kind is Kind.SLOW:
                    self._send_slowly(dst, chunk, fault, conn, direction, clock)
                else:
                    dst.sendall(chunk)
                    self._note(conn, **{direction: len(chunk)})
                moved += len(chunk)
        except OSError:
            if not done.is_set():
                self._broken(conn, src, dst, done)

    def _send_slowly(self, dst: socket.socket, chunk: bytes, fault: Fault, conn: Connection, direction: str,
                     clock: list[float]) -> None:
        # pieces of a twentieth of a second's worth, each sent on one schedule for the
        # whole connection: byte n leaves no earlier than n / rate seconds after the first
        rate = fault.rate
        piece = max(1, rate // 20)
        if not clock:
            clock.extend((time.monotonic(), 0.0))
        for offset in range(0, len(chunk), piece):
            part = chunk[offset : offset + piece]
            due = clock[0] + clock[1] / rate
            if self._stopped.wait(max(0.0, due - time.monotonic())):
                raise OSError("proxy stopped")
            dst.sendall(part)
            clock[1] += len(part)
            self._note(conn, **{direction: len(part)})

    def _fire(self, fault: Fault, conn: Connection, src: socket.socket, dst: socket.socket,
              done: threading.Event) -> None:
        if fault.kind is Kind.STALL:
            # nothing more moves this way; the other direction runs on until the end
            limit = time.monotonic() + self.stall_limit
            while not (self._stopped.is_set() or done.is_set()) and time.monotonic() < limit:
                self._stopped.wait(0.1)
            if self._stopped.is_set() or done.is_set():
                self._note(conn, ended="stalled until stop")
                done.set()
                return
            self._note(conn, ended="stall limit")
            done.set()
            _prepare_reset(src, dst)
            return
        done.set()
        self._note(conn, ended="cut" if fault.kind is Kind.CUT else "reset")
        if fault.kind is Kind.RESET:
            _prepare_reset(src, dst)  # the close after both directions stopped sends the RST
            return
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _end(self, conn: Connection, how: str, src: socket.socket, dst: socket.socket, done: threading.Event) -> None:
        """``src`` closed its sending side: pass the end on to ``dst`` (a half close: the
        other direction runs on until it ends too)."""
        self._note(conn, ended=how)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def _broken(self, conn: Connection, src: socket.socket, dst: socket.socket, done: threading.Event) -> None:
        """A socket failed (reset, closed under us): end both directions."""
        self._note(conn, ended="broken")
        done.set()
        for sock in (dst, src):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


# -- FTP and GridFTP: data connections through proxies of their own ------------------------------

_HOST_PORT = re.compile(rb"(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})")
_EPSV = re.compile(rb"\(\|\|\|(\d+)\|\)")


class FtpFaultProxy(FaultProxy):
    """A control-connection proxy whose passive replies send data connections through
    data proxies, each with the faults ``data_faults`` gives by data connection index
    (counted over every data proxy this control proxy made)."""

    def __init__(self, target: tuple[str, int], faults: FaultPlan = (), *, data_faults: FaultPlan = (),
                 **kwargs: object) -> None:
        super().__init__(target, faults, rewrite_down=self._line_rewriter, **kwargs)  # type: ignore[arg-type]
        self._data_faults = data_faults
        self._data_count = 0
        self.data_proxies: list[FaultProxy] = []

    def _wake(self) -> None:
        # a data connection changed: wait_for() here may be waiting on it
        with self._changed:
            self._changed.notify_all()

    def set_data_faults(self, faults: FaultPlan) -> None:
        with self._lock:
            self._data_faults = faults

    @property
    def data_connections(self) -> list[Connection]:
        return [c for p in self.data_proxies for c in p.connections]

    def _data_fault(self, _local_index: int) -> Fault:
        with self._lock:
            index = self._data_count
            self._data_count += 1
            plan = self._data_faults
        if callable(plan):
            return plan(index)
        return plan[index] if index < len(plan) else Fault()

    def _proxy_to(self, host: str, port: int) -> int:
        proxy = FaultProxy((host, port), self._data_fault, max_connections=self.max_connections,
                           stall_limit=self.stall_limit, on_change=self._wake).start()
        with self._lock:
            self.data_proxies.append(proxy)
        return proxy.port

    def _line_rewriter(self) -> Rewrite:
        pending = bytearray()
        state = {"spas": False}

        def rewrite(chunk: bytes) -> bytes:
            pending.extend(chunk)
            out = bytearray()
            while b"\n" in pending:
                end = pending.index(b"\n") + 1
                line = bytes(pending[:end])
                del pending[:end]
                out += self._rewrite_line(line, state)
            return bytes(out)

        return rewrite

    def _rewrite_line(self, line: bytes, state: dict[str, bool]) -> bytes:
        if line.startswith(b"229-"):
            state["spas"] = True
        elif line[:3].isdigit() and line[3:4] == b" ":
            state["spas"] = False
        in_spas = state["spas"] and not line[:3].isdigit()
        if line.startswith(b"227 ") or in_spas:
            match = _HOST_PORT.search(line)
            if match:
                numbers = [int(n) for n in match.groups()]
                host = ".".join(str(n) for n in numbers[:4])
                port = self._proxy_to(host, numbers[4] * 256 + numbers[5])
                text = f"127,0,0,1,{port // 256},{port % 256}".encode()
                return line[: match.start()] + text + line[match.end() :]
        if line.startswith(b"229 "):
            match = _EPSV.search(line)
            if match:
                port = self._proxy_to(self.target[0], int(match.group(1)))
                return line[: match.start()] + f"(|||{port}|)".encode() + line[match.end() :]
        return line

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        with self._lock:
            proxies = list(self.data_proxies)
        for proxy in proxies:
            proxy.stop(timeout)
