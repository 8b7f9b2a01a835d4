"""GSI on a data connection: the thin blocking shell around a :class:`SecurityContext`.

:class:`SecureDataSocket` stands in for the data socket the transfer threads
use (``recv_into``, ``sendall``, ``sendmsg``, ``shutdown``, ``close``).  Its
first use authenticates the connection: the side that connected initiates,
the side that accepted accepts, tokens go raw over the socket, and the peer's
identity is checked against ``DCAU``.  Then, with ``PROT C``, bytes pass in the
clear; with ``PROT S``/``P`` each write leaves as GSI-wrapped TLS records and
reads unwrap them.  The socket's timeout bounds every step.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Sequence

from ..errors import RemoteProtocolError
from .context import SecurityContext, make_ssl_context
from .dataprot import DataProtection
from .errors import AuthenticationFailed, GSIError
from .proxy import Credential
from .tokens import MAX_TOKEN
from .trust import TrustStore

#: plaintext wrapped per socket write (TLS cuts it into 16 KiB records)
WRAP_CHUNK = 256 * 1024
RECV_SIZE = 256 * 1024


class SecureDataSocket:
    def __init__(
        self,
        sock: socket.socket,
        *,
        initiator: bool,
        credential: Credential,
        trust: TrustStore,
        protection: DataProtection,
        own_identity: str | None,
    ) -> None:
        self.sock = sock
        self._initiator = initiator
        self._credential = credential
        self._trust = trust
        self._protection = protection
        self._own = own_identity
        self._lock = threading.Lock()
        self._context: SecurityContext | None = None
        self._eof = False
        self.peer_identity: str | None = None

    # -- authentication -------------------------------------------------------------

    def authenticate(self) -> None:
        with self._lock:
            if self._context is not None:
                return
            ctx = SecurityContext(
                # As the TLS client (the side that connected) OpenSSL would hold the peer's chain to the
                # TLS server purpose, which a user's clientAuth-only certificate fails; GSI ignores
                # purposes, so that chain is verified by SecurityContext, every other check kept.
                make_ssl_context(self._credential, self._trust, server_side=not self._initiator,
                                 purpose_check=not self._initiator),
                self._trust,
                server_side=not self._initiator,
                check_peer=self._check_peer,
                # Globus protects data channels with plain TLS: no GSI flag exchange after the handshake
                ssl_compatible=self._protection.wrapped,
            )
            try:
                token = ctx.step(b"") if self._initiator else b""
                if token:
                    self.sock.sendall(token)
                while not ctx.complete:
                    token = ctx.step(self._next_token())
                    if token:
                        self.sock.sendall(token)
            except (GSIError, RemoteProtocolError) as exc:
                raise AuthenticationFailed(f"data connection not authenticated: {exc}") from exc
            self.peer_identity = ctx.peer_identity
            self._context = ctx

    def _check_peer(self, identity: str) -> None:
        try:
            self._protection.check_peer(self._own, identity)
        except GSIError as exc:
            raise AuthenticationFailed(str(exc)) from exc

    def _next_token(self) -> bytes:
        # A TLS record carries its length in its 5-byte header; any other token has a 4-byte
        # length in front (the Globus XIO GSI driver's framing).  Exact reads: bytes after the
        # last handshake token are data, not tokens.
        head = self._recv_exact(5)
        if head[0] in range(20, 27) and head[1] == 3:
            return head + self._recv_exact(int.from_bytes(head[3:5], "big"))
        size = int.from_bytes(head[:4], "big")
        if size > MAX_TOKEN or size < 1:
            raise AuthenticationFailed(f"a data-channel token claims {size} bytes")
        return head[4:] + self._recv_exact(size - 1)

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise AuthenticationFailed("the peer closed the data connection during authentication")
            buf += chunk
        return bytes(buf)

    def _ready(self) -> SecurityContext:
        if self._context is None:
            self.authenticate()
        assert self._context is not None
        return self._context

    # -- the socket interface the transfer code uses ----------------------------------

    def recv_into(self, buffer: memoryview | bytearray, nbytes: int = 0) -> int:
        ctx = self._ready()
        view = memoryview(buffer)
        want = nbytes or len(view)
        if not self._protection.wrapped:
            return self.sock.recv_into(view, want)
        while not self._eof:
            n = ctx.unwrap_into(view, want)
            if n is not None:
                if n == 0:
                    self._eof = True
                return n
            data = self.sock.recv(RECV_SIZE)
            if not data:
                self._eof = True
                break
            ctx.feed(data)
        return 0

    def recv(self, n: int) -> bytes:
        buf = bytearray(n)
        got = self.recv_into(buf, n)
        return bytes(buf[:got])

    def sendall(self, data: bytes | memoryview) -> None:
        ctx = self._ready()
        if not self._protection.wrapped:
            self.sock.sendall(data)
            return
        view = memoryview(data).cast("B")
        for pos in range(0, len(view), WRAP_CHUNK):
            self.sock.sendall(ctx.wrap(view[pos : pos + WRAP_CHUNK]))

    def sendmsg(self, buffers: Sequence[bytes | memoryview]) -> int:
        if not self._protection.wrapped:
            self._ready()
            return self.sock.sendmsg(buffers)
        total = 0
        for b in buffers:
            self.sendall(b)
            total += len(memoryview(b).cast("B"))
        return total

    def settimeout(self, value: float | None) -> None:
        self.sock.settimeout(value)

    def setsockopt(self, *args: int) -> None:
        self.sock.setsockopt(*args)

    def fileno(self) -> int:
        return self.sock.fileno()

    def shutdown(self, how: int) -> None:
        self.sock.shutdown(how)

    def close(self) -> None:
        self.sock.close()


def secure_data_socket(
    sock: socket.socket,
    *,
    initiator: bool,
    credential: Credential | None,
    trust: TrustStore,
    protection: DataProtection,
    own_identity: str | None,
) -> socket.socket | SecureDataSocket:
    """What the server does with each new data socket: the socket itself when DCAU is off."""
    if not protection.authenticated:
        return sock
    if credential is None:
        raise AuthenticationFailed("DCAU needs a delegated credential; the client did not delegate one",
                                   hint="send DCAU N, or let the client delegate (globus-url-copy does by default)")
    return SecureDataSocket(sock, initiator=initiator, credential=credential, trust=trust,
                            protection=protection, own_identity=own_identity)
