"""The fault-injecting proxy itself, against a small loopback server."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from transfercore.testing.faultproxy import Fault, FaultProxy, FtpFaultProxy, Kind

PAYLOAD = os.urandom(200_000)


class Upstream:
    """A loopback server running ``handle(conn)`` per connection, counting what it saw."""

    def __init__(self, handle: Callable[[socket.socket], None]) -> None:
        self.handle = handle
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        with conn:
            try:
                self.handle(conn)
            except OSError as exc:
                self.errors.append(exc)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept
        self.sock.close()
        self.thread.join(5)


def send_payload(conn: socket.socket) -> None:
    conn.sendall(PAYLOAD)


def echo(conn: socket.socket) -> None:
    while chunk := conn.recv(65536):
        conn.sendall(chunk)


@pytest.fixture
def upstream() -> Iterator[Callable[[Callable[[socket.socket], None]], Upstream]]:
    made: list[Upstream] = []

    def make(handle: Callable[[socket.socket], None]) -> Upstream:
        made.append(Upstream(handle))
        return made[-1]

    yield make
    for u in made:
        u.close()


@pytest.fixture
def proxy() -> Iterator[Callable[..., FaultProxy]]:
    made: list[FaultProxy] = []

    def make(target: tuple[str, int], *args: object, cls: type[FaultProxy] = FaultProxy, **kwargs: object) -> FaultProxy:
        made.append(cls(target, *args, **kwargs).start())  # type: ignore[arg-type]
        return made[-1]

    yield make
    for p in made:
        p.stop()


def read_all(sock: socket.socket, timeout: float = 10) -> tuple[bytes, str]:
    """What arrives until the end, and how it ended ("eof", "reset" or "timeout")."""
    sock.settimeout(timeout)
    got = bytearray()
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return bytes(got), "reset"
        except TimeoutError:
            return bytes(got), "timeout"
        if not chunk:
            return bytes(got), "eof"
        got += chunk


def read_exactly(sock: socket.socket, size: int, timeout: float = 30) -> bytes:
    """The first ``size`` bytes that arrive, however many reads they take (within ``timeout``)."""
    deadline = time.monotonic() + timeout
    got = bytearray()
    while len(got) < size:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(size - len(got))
        if not chunk:
            break
        got += chunk
    return bytes(got)


def connect(p: FaultProxy) -> socket.socket:
    return socket.create_connection(p.address, timeout=10)


def refused(p: FaultProxy) -> bool:
    """Whether a connection to ``p`` is reset before a byte arrives (the reset may already
    reach ``connect``)."""
    try:
        s = connect(p)
    except ConnectionResetError:
        return True
    with s:
        return read_all(s) == (b"", "reset")


def test_pass_forwards_both_ways(upstream, proxy):
    up = upstream(echo)
    p = proxy(("127.0.0.1", up.port))
    with connect(p) as s:
        s.sendall(PAYLOAD)
        s.shutdown(socket.SHUT_WR)
        got, how = read_all(s)
    assert got == PAYLOAD and how == "eof"
    assert p.wait_for(lambda cs: cs[0].ended != "")
    assert p.connections[0].up == p.connections[0].down == len(PAYLOAD)


def test_refuse_resets_at_once_and_never_reaches_the_server(upstream, proxy):
    up = upstream(send_payload)
    p = proxy(("127.0.0.1", up.port), [Fault.refuse()])
    assert refused(p)
    assert p.wait_for(lambda cs: cs[0].ended == "refused")
    assert up.accepted == 0


@pytest.mark.parametrize(("kind", "ending"), [(Kind.CUT, "eof"), (Kind.RESET, "reset")])
def test_cut_and_reset_after_n_bytes_down(upstream, proxy, kind, ending):
    up = upstream(send_payload)
    fault = Fault(kind, after=70_000)
    p = proxy(("127.0.0.1", up.port), [fault])
    with connect(p) as s:
        got, how = read_all(s)
    # a reset may discard bytes still in the client's receive queue: never more than N arrive
    assert got == PAYLOAD[:70_000] if kind is Kind.CUT else PAYLOAD[: len(got)] and len(got) <= 70_000
    assert how == ending
    assert p.wait_for(lambda cs: cs[0].ended == kind.value)
    assert p.connections[0].fired and p.connections[0].down == 70_000


def test_cut_up_stops_what_the_client_sends_at_n_bytes(upstream, proxy):
    seen = bytearray()
    done = threading.Event()

    def sink(conn: socket.socket) -> None:
        while chunk := conn.recv(65536):
            seen.extend(chunk)
        done.set()

    up = upstream(sink)
    p = proxy(("127.0.0.1", up.port), [Fault.cut(1000, "up")])
    with connect(p) as s, contextlib.suppress(OSError):
        s.sendall(PAYLOAD)
    assert done.wait(10)
    assert bytes(seen) == PAYLOAD[:1000]


def test_stall_holds_the_rest_until_the_proxy_stops(upstream, proxy):
    up = upstream(send_payload)
    p = proxy(("127.0.0.1", up.port), [Fault.stall(5000)])
    with connect(p) as s:
        # the first 5000 bytes may take a while on a busy machine: wait for them without a
        # short timeout, then check that nothing more comes while the stall holds
        got = read_exactly(s, 5000)
        more, how = read_all(s, timeout=0.5)
        assert (len(got), len(more), how) == (5000, 0, "timeout")
        assert p.connections[0].ended == ""  # still open, stalled
        p.stop()
        rest, how = read_all(s)
    assert rest == b"" and how in ("eof", "reset")
    assert p.connections[0].ended == "stalled until stop"


def test_a_stall_is_bounded(upstream, proxy):
    up = upstream(send_payload)
    p = proxy(("127.0.0.1", up.port), [Fault.stall(10)], stall_limit=0.3)
    with connect(p) as s:
        got, how = read_all(s)
    assert len(got) == 10 and how in ("eof", "reset")
    assert p.wait_for(lambda cs: cs[0].ended == "stall limit")


def test_slow_keeps_to_its_rate(upstream, proxy):
    up = upstream(lambda conn: conn.sendall(PAYLOAD[:60_000]))
    p = proxy(("127.0.0.1", up.port), [Fault.slow(200_000)])
    started = time.monotonic()
    with connect(p) as s:
        got, how = read_all(s)
    took = time.monotonic() - started
    assert got == PAYLOAD[:60_000] and how == "eof"
    assert took >= 0.25  # 60 kB at 200 kB/s: the last 10 kB piece leaves at 0.25 s


def test_faults_by_connection_index_then_pass(upstream, proxy):
    up = upstream(send_payload)
    p = proxy(("127.0.0.1", up.port), [Fault.cut(100), Fault.refuse()])
    with connect(p) as s:
        assert read_all(s) == (PAYLOAD[:100], "eof")
    assert refused(p)
    with connect(p) as s:
        assert read_all(s) == (PAYLOAD, "eof")
    assert [c.ended for c in p.connections][:2] == ["cut", "refused"]


def test_connections_beyond_the_bound_are_refused(upstream, proxy):
    up = upstream(send_payload)
    p = proxy(("127.0.0.1", up.port), max_connections=1)
    with connect(p) as first:
        assert read_all(first)[0] == PAYLOAD
    assert refused(p)


def test_stop_closes_the_port_and_joins_its_threads(upstream, proxy):
    up = upstream(echo)
    p = proxy(("127.0.0.1", up.port))
    s = connect(p)
    s.sendall(b"x")
    assert s.recv(1) == b"x"
    p.stop(timeout=5)
    assert not any(t.is_alive() for t in p._threads)
    with pytest.raises(OSError):
        socket.create_connection(p.address, timeout=2).close()
    s.close()


def test_ftp_proxy_sends_passive_data_connections_through_data_proxies(upstream, proxy):
    data = Upstream(send_payload)
    h = data.port

    def control(conn: socket.socket) -> None:
        conn.sendall(b"220 hi\r\n")
        f = conn.makefile("rb")
        for line in f:
            if line.startswith(b"PASV"):
                conn.sendall(f"227 Entering Passive Mode (127,0,0,1,{h // 256},{h % 256})\r\n".encode())
            elif line.startswith(b"SPAS"):
                text = f"229-Entering Striped Passive Mode.\r\n 127,0,0,1,{h // 256},{h % 256}\r\n229 End\r\n"
                conn.sendall(text.encode())
            elif line.startswith(b"EPSV"):
                conn.sendall(f"229 Entering Extended Passive Mode (|||{h}|)\r\n".encode())
            else:
                return

    up = upstream(control)
    p = proxy(("127.0.0.1", up.port), cls=FtpFaultProxy, data_faults=[Fault.cut(1000), Fault.passes()])
    try:
        with connect(p) as s:
            f = s.makefile("rb")
            assert f.readline() == b"220 hi\r\n"
            ports = []
            s.sendall(b"PASV\r\n")
            line = f.readline()
            assert line.startswith(b"227 Entering Passive Mode (127,0,0,1,")
            numbers = [int(n) for n in line.split(b"(")[1].split(b")")[0].split(b",")]
            ports.append(numbers[4] * 256 + numbers[5])
            s.sendall(b"SPAS\r\n")
            assert f.readline() == b"229-Entering Striped Passive Mode.\r\n"
            numbers = [int(n) for n in f.readline().strip().split(b",")]
            ports.append(numbers[4] * 256 + numbers[5])
            assert f.readline() == b"229 End\r\n"
            s.sendall(b"EPSV\r\n")
            ports.append(int(f.readline().split(b"|||")[1].split(b"|")[0]))
        assert h not in ports and len(set(ports)) == 3
        got = []
        for port in ports:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as d:
                got.append(read_all(d))
        assert [len(g[0]) for g in got] == [1000, len(PAYLOAD), len(PAYLOAD)]
        assert [c.ended for c in p.data_connections][0] == "cut"
    finally:
        data.close()


@pytest.mark.parametrize(("kind", "ending"), [(Kind.CUT, "eof"), (Kind.RESET, "reset")])
def test_trip_breaks_an_open_connection_when_the_test_chooses(upstream, proxy, kind, ending):
    up = upstream(echo)
    p = proxy(("127.0.0.1", up.port))
    with connect(p) as s:
        s.sendall(b"ping")
        assert s.recv(4) == b"ping"
        assert p.trip(0, kind)
        assert read_all(s) == (b"", ending)
    assert p.connections[0].ended == kind.value
    assert not p.trip(0)


def test_connect_retry_holds_a_client_until_the_server_listens_again(upstream, proxy):
    from transfercore.testing.loopback import free_port

    port = free_port()
    p = proxy(("127.0.0.1", port), connect_retry=30)
    with connect(p) as s:
        # the server is down: the proxy holds the client instead of resetting it
        assert p.wait_for(lambda cs: len(cs) == 1)
        late = socket.create_server(("127.0.0.1", port))
        try:
            conn, _ = late.accept()
            with conn:
                conn.sendall(b"back")
            assert read_all(s) == (b"back", "eof")
        finally:
            late.close()
    refusing = proxy(("127.0.0.1", free_port()), connect_retry=0.2)
    assert refused(refusing)
    assert refusing.connections[0].ended == "server unreachable"
