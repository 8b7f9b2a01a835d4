"""What a GridFTP session asks its I/O layer to do: the actions :meth:`.session.Session.handle` returns.

Each is an immutable value: the session decides it from the commands, the
I/O layer carries it out (check a password, open a listener, touch the
storage, run a transfer) and reports the result back to the session, which
decides the reply.  No action does any I/O itself.
"""

from __future__ import annotations

import attrs

from ..ranges import RangeSet
from .control import Reply
from .hostport import HostPort

#: Seconds between restart (111) and performance (112) markers unless the client asks otherwise.
DEFAULT_MARKER_INTERVAL = 5.0


@attrs.frozen
class Authenticate:
    user: str
    password: str


@attrs.frozen
class OpenPassive:
    """Open a listener; ``kind`` is PASV, EPSV or SPAS (it decides the reply form)."""

    kind: str


@attrs.frozen
class Passive:
    """Data connections come to our listener."""


@attrs.frozen
class Active:
    """We connect to the client's addresses."""

    addresses: tuple[HostPort, ...]


DataSetup = Passive | Active


@attrs.frozen
class StorageOp:
    """A namespace command on one path: SIZE, MDTM, MLST, STAT, CWD, MKD, RMD, DELE, RNFR, SYMLINKFROM."""

    verb: str
    path: str


@attrs.frozen
class Rename:
    src: str
    dst: str


@attrs.frozen
class SetAttributes:
    """SITE CHMOD (``mode``) or SITE UTIME (``mtime_ns``) through ``Driver.set_metadata``."""

    path: str
    mode: int | None = None
    mtime_ns: int | None = None


@attrs.frozen
class MakeSymlink:
    """SITE SYMLINKTO: the link ``path`` to ``target`` (the path SITE SYMLINKFROM named)."""

    path: str
    target: str


@attrs.frozen
class Checksum:
    algorithm: str
    path: str
    offset: int
    length: int | None


@attrs.frozen
class Listing:
    verb: str  # MLSD, MLSR, LIST or NLST
    path: str
    data: DataSetup
    mode: str


@attrs.frozen
class Store:
    path: str
    data: DataSetup
    mode: str
    #: Ranges the client says we already hold (REST); ``None`` for a fresh write.
    restart: RangeSet | None
    #: Size announced by ALLO; ``None`` when the client sent none.
    alloc: int | None
    #: ESTO A <offset>: data offsets are shifted by this much.
    shift: int = 0
    #: ESTO: the object is updated in place (its other bytes stay), not replaced.
    update: bool = False
    buffer_size: int | None = None
    restart_interval: float = DEFAULT_MARKER_INTERVAL
    perf_interval: float = DEFAULT_MARKER_INTERVAL


@attrs.frozen
class Retrieve:
    path: str
    data: DataSetup
    mode: str
    #: Ranges the client already holds; only the rest is sent.
    restart: RangeSet | None
    #: ERET P: only ``[offset, offset + length)``, sent at offsets relative to ``offset``.
    window: tuple[int, int] | None = None
    parallelism: int = 1
    buffer_size: int | None = None
    perf_interval: float = DEFAULT_MARKER_INTERVAL
    #: Seconds between ``112`` markers of a download, when the client asked for
    #: them with ``OPTS RETR Markers=n;`` (as with Globus, none otherwise).
    perf_markers: float | None = None


@attrs.frozen
class Abort:
    """Stop the transfer in progress (its durable state is kept)."""


@attrs.frozen
class Close:
    """Close the control connection after the replies before it are sent."""


Action = (
    Authenticate
    | OpenPassive
    | StorageOp
    | Rename
    | SetAttributes
    | MakeSymlink
    | Checksum
    | Listing
    | Store
    | Retrieve
    | Abort
    | Close
)
Output = Reply | Action

