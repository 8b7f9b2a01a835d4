"""How ``serve`` runs: addresses, limits, timeouts, spooling, GSI (a value the server and its transfers read)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from .limits import Limits
from .session import SessionConfig
from .upload import DEFAULT_REORDER_WINDOW

if TYPE_CHECKING:
    from .gsi.credentials import GSIConfig


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
