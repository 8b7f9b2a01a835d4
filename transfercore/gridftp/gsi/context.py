"""The GSI security context, sans I/O: TLS over memory BIOs, driven token by token.

GSI is a GSS-API mechanism whose tokens are TLS records.  A context is
established by passing the records each side's TLS engine produces to the
other (in ``ADAT`` commands on the control channel, raw on data channels);
after the TLS handshake comes one GSI exchange of its own, protected by the
new TLS session:

* the acceptor, if its last handshake flight left nothing to send, sends one
  byte ``\\0`` so the initiator gets a token to answer;
* the initiator sends ``D`` to delegate a credential or ``0`` not to;
* on ``D`` the acceptor sends a certificate request (DER) for a new key, the
  initiator answers with a proxy certificate for it (DER), and the acceptor
  now holds a credential of the initiator's identity.

Globus skips that exchange where it speaks plain TLS ("SSL compatible"):
on data channels with ``PROT S`` or ``P``.

Afterwards ``wrap``/``unwrap`` (GSS ``gss_wrap``/``gss_unwrap``) are TLS
application-data records: what ``MIC``/``ENC`` commands and ``631``/``632``
replies carry, base64-encoded, and what protected data channels carry raw.

Nothing here touches a socket; callers move the tokens.
"""

from __future__ import annotations

import datetime
import enum
import os
import ssl
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .errors import AuthenticationFailed, CredentialExpired, ProtectionError
from .names import oneline
from .pathcheck import verify_peer_chain
from .proxy import Credential, DelegationRequest, ProxyKind, der_length, sign_request
from .trust import TrustStore, expired_error

_READ = 65536
_EXPIRED = 10  # X509_V_ERR_CERT_HAS_EXPIRED
_NOT_YET_VALID = 9  # X509_V_ERR_CERT_NOT_YET_VALID
_UNTRUSTED = {2, 19, 20, 21}  # no issuer certificate / self-signed in chain / no local issuer / leaf only


class Phase(enum.Enum):
    HANDSHAKE = "handshake"
    FLAGS = "flags"
    DELEGATION = "delegation"
    DONE = "done"
    FAILED = "failed"


def make_ssl_context(
    credential: Credential, trust: TrustStore, *, server_side: bool, purpose_check: bool = True
) -> ssl.SSLContext:
    """A TLS context presenting ``credential`` and requiring a peer verified against ``trust``.

    ``purpose_check=False`` (TLS clients only) leaves the peer's chain unchecked by OpenSSL, which
    would hold it to the TLS server purpose: :class:`SecurityContext` then verifies it in full
    itself (:mod:`.pathcheck`), the purpose alone excepted, as GSI does."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False  # GSI names the peer by its certificate subject, checked by the caller
    ctx.options |= ssl.OP_NO_TICKET
    if server_side:
        # tickets after a TLS 1.3 handshake would be GSS tokens the initiator does not expect
        ctx.num_tickets = 0
    load_credential(ctx, credential)
    if purpose_check:
        trust.configure(ctx)
    elif server_side:
        # a TLS server that does not verify does not even ask for the client's certificate
        raise ValueError("only a TLS client can leave the peer's chain to SecurityContext")
    else:
        # the server's certificate comes all the same, and the handshake proves its key
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def load_credential(ctx: ssl.SSLContext, credential: Credential) -> None:
    """Load an in-memory credential.  ``ssl`` reads only files, so it reads an anonymous memory file:
    a private key (the user's delegated one too) never touches a disk."""
    fd = os.memfd_create("gsi-credential", os.MFD_CLOEXEC)
    try:
        os.write(fd, credential.to_pem())
        ctx.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


class SecurityContext:
    """One side of a GSI context.  Feed it the peer's tokens with :meth:`step`; send what it returns."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        trust: TrustStore,
        *,
        server_side: bool,
        delegate: Credential | None = None,
        delegate_kind: ProxyKind = ProxyKind.LIMITED,
        check_peer: Callable[[str], None] | None = None,
        ssl_compatible: bool = False,
    ) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = ssl_context.wrap_bio(self._incoming, self._outgoing, server_side=server_side)
        self._trust = trust
        self._server_side = server_side
        self._delegate = delegate
        self._delegate_kind = delegate_kind
        self._check_peer = check_peer
        self._ssl_compatible = ssl_compatible
        self._request: DelegationRequest | None = None
        self._pending = b""
        self.phase = Phase.HANDSHAKE
        self.peer_chain: tuple[x509.Certificate, ...] = ()
        self.peer_identity: str | None = None
        self.delegated: Credential | None = None
        self.closed = False

    @property
    def complete(self) -> bool:
        return self.phase is Phase.DONE

    @property
    def cipher(self) -> str | None:
        c = self._ssl.cipher()
        return f"{c[1]} {c[0]}" if c else None

    def step(self, token: bytes) -> bytes:
        """Consume one token from the peer (``b""`` to start an initiator); return the token to send."""
        if self.phase in (Phase.DONE, Phase.FAILED):
            raise AuthenticationFailed("the security context is already established or failed")
        try:
            if token:
                self._incoming.write(token)
            if self.phase is Phase.HANDSHAKE:
                if not self._handshake():
                    return self._outgoing.read()
                if self._ssl_compatible:
                    self.phase = Phase.DONE
                    return self._outgoing.read()
                if self._server_side:
                    if self._outgoing.pending == 0:
                        self._ssl.write(b"\0")
                    self.phase = Phase.FLAGS
                    return self._outgoing.read()
                if self._outgoing.pending:
                    self.phase = Phase.FLAGS
                    return self._outgoing.read()
                self.phase = Phase.FLAGS
            if self.phase is Phase.FLAGS:
                self._flags(bool(token))
            elif self.phase is Phase.DELEGATION:
                self._delegation()
            return self._outgoing.read()
        except AuthenticationFailed:
            self.phase = Phase.FAILED
            raise
        except ssl.SSLCertVerificationError as exc:
            self.phase = Phase.FAILED
            raise self._verify_error(exc) from exc
        except ssl.SSLError as exc:
            self.phase = Phase.FAILED
            reason = exc.reason or exc.strerror or str(exc)
            raise AuthenticationFailed(f"the TLS handshake of GSI failed: {reason}") from exc

    def _handshake(self) -> bool:
        try:
            self._ssl.do_handshake()
        except ssl.SSLWantReadError:
            return False
        if self._ssl.context.verify_mode == ssl.CERT_NONE:
            # make_ssl_context(purpose_check=False): OpenSSL checked nothing, every check is ours
            self.peer_chain = verify_peer_chain(self._trust, _presented_chain(self._ssl),
                                                security_level=self._ssl.context.security_level)
        else:
            self.peer_chain = _verified_chain(self._ssl)
        self.peer_identity = self._trust.check_chain(self.peer_chain)
        if self._check_peer is not None:
            self._check_peer(self.peer_identity)
        return True

    def _flags(self, had_input: bool) -> None:
        if self._server_side:
            flag = self._read_available(1)
            if not flag:
                return
            if flag == b"D":
                bits = getattr(self.peer_chain[0].public_key(), "key_size", 2048)
                self._request = DelegationRequest.make(bits)
                self._ssl.write(self._request.request_der)
                self.phase = Phase.DELEGATION
            elif flag == b"0":
                self.phase = Phase.DONE
            else:
                raise AuthenticationFailed(f"GSI delegation protocol violation: flag byte {flag!r}")
            return
        if had_input:
            self._read_available(1)  # the acceptor's "\0", or nothing
        if self._delegate is not None:
            self._ssl.write(b"D")
            self.phase = Phase.DELEGATION
        else:
            self._ssl.write(b"0")
            self.phase = Phase.DONE

    def _delegation(self) -> None:
        self._pending += self._read_available(_READ)
        size = der_length(self._pending)
        if size is None or len(self._pending) < size:
            return
        message, self._pending = self._pending[:size], self._pending[size:]
        if self._server_side:
            assert self._request is not None
            self.delegated = self._request.accept(message, self.peer_chain)
            self._request = None
        else:
            assert self._delegate is not None
            self._ssl.write(sign_request(message, self._delegate, kind=self._delegate_kind))
        self.phase = Phase.DONE

    def _read_available(self, limit: int) -> bytes:
        out = bytearray()
        while len(out) < limit:
            try:
                chunk = self._ssl.read(limit - len(out))
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.closed = True
                break
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def _verify_error(self, exc: ssl.SSLCertVerificationError) -> AuthenticationFailed:
        # OpenSSL keeps no chain after a failed verification, so name the certificate when it can
        chain = _unverified_chain(self._ssl)
        now = datetime.datetime.now(datetime.UTC)
        who = "client" if self._server_side else "server"
        subject = oneline(chain[0].subject) if chain else f"of the {who}"
        if exc.verify_code in (_EXPIRED, _NOT_YET_VALID):
            for cert in chain:
                if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
                    return expired_error(cert, now)
            if exc.verify_code == _EXPIRED:
                return CredentialExpired(
                    f"the {who}'s proxy or certificate has expired",
                    hint="make a new proxy with grid-proxy-init" if self._server_side else "renew the certificate",
                )
            return CredentialExpired(f"the {who}'s proxy or certificate is not valid yet",
                                     hint="check the clocks of client and server")
        if exc.verify_code in _UNTRUSTED:
            return AuthenticationFailed(
                f"the certificate {subject} is not issued by a CA trusted in {self._trust.directory}",
                hint="install its CA (and signing policy) in the CA directory, or use a certificate from a trusted CA",
            )
        return AuthenticationFailed(f"the {who} certificate was refused: {exc.verify_message}")

    # --- protection ------------------------------------------------------------

    def wrap(self, data: bytes | memoryview) -> bytes:
        """``gss_wrap``: ``data`` as TLS application-data records (encrypted and integrity-protected)."""
        if not self.complete:
            raise ProtectionError("no established security context to wrap with")
        view = memoryview(data)
        while view:
            n = self._ssl.write(view)
            view = view[n:]
        return self._outgoing.read()

    def unwrap(self, token: bytes) -> bytes:
        """``gss_unwrap``: the plaintext of one or more complete records from the peer."""
        if not self.complete:
            raise ProtectionError("no established security context to unwrap with")
        self._incoming.write(token)
        out = bytearray()
        while True:
            try:
                chunk = self._ssl.read(_READ)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.closed = True
                break
            except ssl.SSLError as exc:
                self.closed = True
                raise ProtectionError(
                    f"a protected message failed its integrity check ({exc.reason or 'bad record'})"
                ) from exc
            if not chunk:
                break
            out += chunk
        # a TLS 1.3 key update or alert may need an answer; it rides on the next wrap
        return bytes(out)

    def feed(self, data: bytes) -> None:
        """Bytes of the peer's protected stream (any framing: TLS finds its records itself)."""
        self._incoming.write(data)

    def unwrap_into(self, buffer: memoryview, nbytes: int) -> int | None:
        """Plaintext from what :meth:`feed` gave, straight into ``buffer``: its length, 0 at the
        peer's close, None when more bytes are needed.  The fast path of protected data channels."""
        try:
            n: int = self._ssl.read(nbytes, buffer)  # type: ignore[assignment]  # with a buffer: a count
            return n
        except ssl.SSLWantReadError:
            return None
        except ssl.SSLZeroReturnError:
            self.closed = True
            return 0
        except ssl.SSLError as exc:
            self.closed = True
            raise ProtectionError(
                f"a protected message failed its integrity check ({exc.reason or 'bad record'})"
            ) from exc


def _der_chain(certs: object) -> tuple[x509.Certificate, ...]:
    out = []
    for cert in certs or ():  # type: ignore[attr-defined]
        out.append(x509.load_der_x509_certificate(cert.public_bytes(ssl._ssl.ENCODING_DER)))  # type: ignore[attr-defined]
    return tuple(out)


def _verified_chain(obj: ssl.SSLObject) -> tuple[x509.Certificate, ...]:
    # public since Python 3.13; the same methods of the C object before that (3.10+)
    getter = getattr(obj, "get_verified_chain", None) or obj._sslobj.get_verified_chain  # type: ignore[attr-defined]
    return _der_chain(getter())


def _presented_chain(obj: ssl.SSLObject) -> tuple[x509.Certificate, ...]:
    """The chain the peer sent, its own certificate (whose key the handshake proved) first."""
    chain = _unverified_chain(obj)
    leaf = obj.getpeercert(binary_form=True)
    if not chain or leaf is None:
        raise AuthenticationFailed("the peer sent no certificate")
    if chain[0].public_bytes(serialization.Encoding.DER) != leaf:
        raise AuthenticationFailed("the peer's certificate is not the first of the chain it sent")
    return chain


def _unverified_chain(obj: ssl.SSLObject) -> tuple[x509.Certificate, ...]:
    getter = getattr(obj, "get_unverified_chain", None) or obj._sslobj.get_unverified_chain  # type: ignore[attr-defined]
    try:
        return _der_chain(getter())
    except (ValueError, ssl.SSLError):
        return ()
