"""GSI on the control channel, sans I/O: ``AUTH GSSAPI``, ``ADAT``, then ``MIC``/``ENC`` lines.

:class:`ControlSecurity` sits between the line reader and the FTP session.
Before authentication it answers ``AUTH``/``ADAT`` itself and lets other
commands through only where the session allows them (``USER``/``PASS`` where
plain logins are on, ``QUIT``, ``FEAT``...).  After it, every line must be a
protected command; it unwraps it into the plain command line for the session,
and wraps the session's replies into ``632`` lines.
"""

from __future__ import annotations

import enum

from ..errors import RemoteProtocolError
from .context import SecurityContext, make_ssl_context
from .credentials import GSIConfig
from .errors import AuthenticationFailed, GSIError, NotAuthorized, ProtectionError
from .events import Authenticated, Command, Event, Reply
from .proxy import Credential
from .tokens import adat_reply, decode_base64, protected_reply


class Stage(enum.Enum):
    NONE = "none"  # no AUTH yet
    ADAT = "adat"  # AUTH GSSAPI accepted, handshake under way
    SECURED = "secured"  # context established: commands must be protected




class ControlSecurity:
    def __init__(self, config: GSIConfig) -> None:
        self._config = config
        self.stage = Stage.NONE
        self._context: SecurityContext | None = None
        self.identity: str | None = None
        self.delegated: Credential | None = None
        #: a protected command failed to unwrap: TLS cannot go on, the connection must close
        self.broken = False

    @property
    def secured(self) -> bool:
        return self.stage is Stage.SECURED

    def receive(self, line: bytes) -> Event:
        """One control line (without CRLF) from the client."""
        verb, _, arg = line.decode("latin-1").partition(" ")
        verb = verb.upper()
        if self.stage is Stage.SECURED:
            if self.broken:
                return Reply(421, "The security context is broken; closing the control connection.")
            if verb not in ("MIC", "ENC", "CONF"):
                return Reply(533, "Command protection level denied: commands must be sent as MIC or ENC.")
            try:
                assert self._context is not None
                plain = self._context.unwrap(decode_base64(arg, what=verb))
            except RemoteProtocolError as exc:
                return Reply(535, f"Failed to unwrap the protected command: {exc}")
            except ProtectionError as exc:
                self.broken = True
                return Reply(535, f"Failed to unwrap the protected command: {exc}; closing the connection.")
            return Command(plain.rstrip(b"\r\n").split(b"\r\n")[0])
        if verb == "AUTH":
            mech = arg.strip().upper()
            if mech != "GSSAPI":
                return Reply(504, f"Unknown authentication type {arg.strip() or '(none)'}; this server speaks AUTH GSSAPI.")
            if self.stage is Stage.ADAT:
                self._context = None
            ssl_ctx = make_ssl_context(self._config.credential, self._config.trust, server_side=True)
            self._context = SecurityContext(ssl_ctx, self._config.trust, server_side=True)
            self.stage = Stage.ADAT
            return Reply(334, "Using authentication type; ADAT must follow.")
        if verb == "ADAT":
            if self.stage is not Stage.ADAT or self._context is None:
                return Reply(503, "Send AUTH GSSAPI before ADAT.")
            return self._adat(arg)
        if verb in ("MIC", "ENC", "CONF"):
            return Reply(503, "No security context yet: authenticate with AUTH GSSAPI and ADAT first.")
        return Command(line)

    def _adat(self, arg: str) -> Event:
        assert self._context is not None
        try:
            token = decode_base64(arg)
            out = self._context.step(token)
        except (RemoteProtocolError, GSIError) as exc:
            self._context = None
            self.stage = Stage.NONE
            return Reply(530, _one_line(f"Authentication failed: {exc}"))
        if not self._context.complete:
            return Reply(*adat_reply(out, complete=False))
        identity = self._context.peer_identity
        assert identity is not None
        try:
            self._config.gridmap.map(identity)
        except NotAuthorized as exc:
            self._context = None
            self.stage = Stage.NONE
            return Reply(530, _one_line(f"Authentication failed: {exc}"))
        self.identity = identity
        self.delegated = self._context.delegated
        self.stage = Stage.SECURED
        return Authenticated(identity, self.delegated, Reply(*adat_reply(out, complete=True)))

    def account(self, requested: str | None) -> str:
        """The local account the authenticated subject logs in as (``USER`` after ``ADAT``)."""
        if self.identity is None:
            raise AuthenticationFailed("not authenticated")
        return self._config.gridmap.map(self.identity, requested)

    def protect(self, reply: bytes) -> bytes:
        """A reply (one or more CRLF lines) as the client must receive it."""
        if self.stage is not Stage.SECURED or self._context is None:
            return reply
        if self.broken:
            # the peer cannot unwrap anything any more; tell it in the clear why it is dropped
            return reply
        return protected_reply(self._context.wrap(reply))


def _one_line(text: str) -> str:
    return " ".join(text.split())


class ControlFilter:
    """The control byte stream through :class:`ControlSecurity`: whole plain lines out, replies aside.

    ``receive`` returns, in order, plain command lines (CRLF-terminated, for the
    session's command reader), :class:`Reply` objects to send at once, and one
    :class:`Authenticated` when the context completes.  Partial lines wait in
    the buffer, so only complete commands ever reach the session.
    """

    MAX_LINE = 1 << 20

    def __init__(self, config: GSIConfig) -> None:
        self.security = ControlSecurity(config)
        self._buf = bytearray()

    def receive(self, data: bytes) -> list[bytes | Event]:
        self._buf += data
        out: list[bytes | Event] = []
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                if len(self._buf) > self.MAX_LINE:
                    self._buf.clear()
                    out.append(Reply(500, "Command line too long."))
                return out
            line = bytes(self._buf[:end]).rstrip(b"\r")
            del self._buf[: end + 1]
            if not line:
                continue
            event = self.security.receive(line)
            out.append(event.line + b"\r\n" if isinstance(event, Command) else event)

    def protect(self, data: bytes) -> bytes:
        return self.security.protect(data)
