"""What a transfer reports while it runs: frozen event records and listeners.

Progress ("bytes handed to the destination") and markers ("bytes the
destination made durable") are different events and never mixed: only a
:class:`Marker` may be shown or stored as a restart point.

Listeners are plain callables taking one event.  They are called from the
thread that runs the transfer, one at a time, in order; a listener that
raises stops the transfer (its durable state is kept), so listeners should
be quick and not fail.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import attrs

from ..ranges import RangeSet

#: Version of the JSON form of events (see :func:`envelope` and docs/engine.md).
SCHEMA_VERSION = 1


class Event:
    """Base of every event.  ``kind`` names it in JSON output."""

    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.kind}
        for field in attrs.fields(type(self)):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            out[field.name] = str(value) if isinstance(value, RangeSet) else value
        return out


@attrs.frozen
class Started(Event):
    """The destination was opened and blocks are about to move."""

    kind: ClassVar[str] = "start"
    transfer_id: int | None
    source: str
    destination: str
    size: int
    streams: int
    block_size: int
    checksum: str | None


@attrs.frozen
class Resumed(Event):
    """The destination accepted the journal's marker; only the rest moves."""

    kind: ClassVar[str] = "resumed"
    marker: RangeSet
    bytes: int
    size: int
    #: Where the marker came from when not from the journal (the destination's own record).
    note: str = ""


@attrs.frozen
class Restarted(Event):
    """A partial transfer existed but starts again from zero, for ``reason``."""

    kind: ClassVar[str] = "restart"
    reason: str


@attrs.frozen
class Progress(Event):
    """Bytes handed to the destination.  Not a restart point."""

    kind: ClassVar[str] = "progress"
    #: Bytes written to the destination in this run.
    bytes_sent: int
    #: Bytes of the object present at the destination: resumed plus sent.
    bytes_done: int
    size: int
    #: Bytes covered by the latest restart marker.
    durable_bytes: int
    elapsed: float
    #: Bytes per second over the last few seconds.
    rate: float
    #: Seconds left at that rate, or None when unknown.
    eta: float | None


@attrs.frozen
class Marker(Event):
    """The destination made ``ranges`` durable: a restart point, recorded in the journal."""

    kind: ClassVar[str] = "marker"
    ranges: RangeSet
    durable_bytes: int
    size: int
    final: bool = False


@attrs.frozen
class Verifying(Event):
    """All bytes are durable; the whole-object checksum is being compared.

    With a read-back in step with the markers, most of the destination was
    already read by then; only the part made durable last is left.
    """

    kind: ClassVar[str] = "verify"
    algorithm: str
    #: "storage" when the storage gave its own checksum of the object, else "read-back" (its bytes read).
    method: str


@attrs.frozen
class VerifyProgress(Event):
    """Bytes of the destination checked so far during verification."""

    kind: ClassVar[str] = "verify-progress"
    bytes_verified: int
    size: int
    elapsed: float


@attrs.frozen
class UpToDate(Event):
    """The copy finished earlier and source and destination still match: nothing moved."""

    kind: ClassVar[str] = "up-to-date"
    size: int
    #: When the earlier copy finished (seconds since the epoch).
    finished: float
    checksum_algorithm: str | None
    checksum: str | None


@attrs.frozen
class Interrupted(Event):
    """Stopped on request (Ctrl-C, SIGTERM, :meth:`Transfer.cancel`); resumable."""

    kind: ClassVar[str] = "interrupted"
    message: str
    durable_bytes: int


@attrs.frozen
class Done(Event):
    """The object is complete, published and (unless disabled) verified."""

    kind: ClassVar[str] = "done"
    size: int
    bytes_sent: int
    bytes_resumed: int
    elapsed: float
    checksum_algorithm: str | None
    checksum: str | None


@attrs.frozen
class Failed(Event):
    """The transfer stopped; its durable state is kept for a resume."""

    kind: ClassVar[str] = "error"
    error: str
    message: str
    hint: str
    durable_bytes: int
    #: True when the run can be resumed by running it again.
    resumable: bool


Listener = Callable[[Event], None]


def envelope(event: Event, transfer_id: int | None) -> dict[str, Any]:
    """The JSON form of ``event``: its fields plus ``schema``, ``time`` and ``transfer_id``."""
    out = event.to_dict()
    out["schema"] = SCHEMA_VERSION
    out["time"] = round(time.time(), 6)
    out["transfer_id"] = transfer_id
    return out


class Listeners:
    """An ordered, thread-safe set of listeners."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Listener] = []

    def add(self, listener: Listener) -> None:
        if not callable(listener):
            raise TypeError(f"a listener must be callable, not {type(listener).__name__}")
        with self._lock:
            self._items.append(listener)

    def remove(self, listener: Listener) -> None:
        with self._lock:
            self._items.remove(listener)

    def emit(self, event: Event) -> None:
        with self._lock:
            items = list(self._items)
        for listener in items:
            listener(event)
