"""The caller's side of the restart-marker contract: when to ask, what to believe, what to announce.

A driver's ``Writer.durable()`` returns the cumulative set of ranges a
restart may rely on.  Every front end (the engine, ``serve``, the DSI) turns
those sets into promises a client or a journal acts on, so the rules live
here, once:

* :class:`MarkerPolicy` says when a marker is due: after ``interval``
  seconds or ``bytes`` bytes since the last one, whichever comes first (as
  GridFTP servers do), and never when nothing new was written;
* :class:`MarkerCursor` is the only caller of ``Writer.durable()`` in the
  core: it checks that each set only grows and holds only written bytes,
  and gives the delta to announce, in whatever offsets the front end names
  (an update's slice is named from its own start).

The cursor keeps no clock and does no I/O but the ``durable()`` call it is
handed a writer for; callers pass the time and bytes they measured.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import attrs

from .errors import OptionError, TransferCoreError
from .ranges import RangeSet

DEFAULT_INTERVAL = 5.0
DEFAULT_BYTES = 256 * 1024 * 1024
#: Seconds a marker may run ahead of the caller's record of written bytes:
#: a write the driver already counted may still be on its way back.
WRITTEN_GRACE = 0.5
#: A timer set for the interval may fire this much early; the marker is due all the same.
TIMER_SLACK = 0.005


def _interval(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not value >= 0:
        raise OptionError(f"marker interval {value} must be a number of seconds >= 0 (0 turns it off)")
    return value or None


def _bytes(value: int | None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise OptionError(f"marker bytes {value!r} must be a whole number of bytes >= 0 (0 turns it off)")
    return value or None


@attrs.frozen
class MarkerPolicy:
    """Take a marker after ``interval`` seconds or ``bytes`` bytes since the last one.

    ``None`` (or 0) turns a limit off; with both off, the only marker is the
    final one.  Each marker costs a flush of the storage (``fdatasync`` on
    POSIX), so neither limit should be tiny.
    """

    interval: float | None = attrs.field(default=DEFAULT_INTERVAL, converter=_interval)
    bytes: int | None = attrs.field(default=DEFAULT_BYTES, converter=_bytes)

    @classmethod
    def none(cls) -> MarkerPolicy:
        """Only the final marker."""
        return cls(None, None)

    @property
    def periodic(self) -> bool:
        return self.interval is not None or self.bytes is not None

    def due(self, seconds_since: float, bytes_since: int) -> bool:
        """Whether a marker is due, given the time and bytes since the last one."""
        if bytes_since <= 0:
            # Nothing new to make durable: a flush would only cost time.
            return False
        if self.interval is not None and seconds_since >= self.interval:
            return True
        return self.bytes is not None and bytes_since >= self.bytes

    def seconds_until_due(self, seconds_since: float) -> float | None:
        """How long the time limit still allows (None when it is off)."""
        if self.interval is None:
            return None
        return max(0.0, self.interval - seconds_since)

    def to_dict(self) -> dict[str, Any]:
        return {"interval": self.interval, "bytes": self.bytes}


class MarkerBroken(TransferCoreError):
    """A driver's ``durable()`` broke the contract: a set shrank, or named bytes never written."""

    def __init__(self, message: str) -> None:
        super().__init__(message, hint="this is a bug in the destination driver; copy with resume turned off")


class Durable(Protocol):
    """What the cursor asks: a driver ``Writer``, or anything keeping its promise (an upload spool)."""

    def durable(self) -> RangeSet: ...


#: Called with the seconds each ``durable()`` call took (a service's latency metric); usually empty.
DURABLE_TIMERS: list[Callable[[float], None]] = []


_NOTHING = RangeSet()
_FINAL_ONLY = MarkerPolicy.none()


def _same(ranges: RangeSet) -> RangeSet:
    return ranges


class MarkerCursor:
    """One upload's restart markers: asks ``durable()``, checks the answer, yields what is new.

    ``start`` is what the writer resumed from (already known to the client or
    journal, never announced again).  ``view`` maps the writer's object
    offsets to the offsets markers name (the slice of an update, shifted to
    its start); by default they are the same.
    """

    def __init__(
        self,
        start: RangeSet | None = None,
        *,
        policy: MarkerPolicy | None = None,
        view: Callable[[RangeSet], RangeSet] = _same,
        now: float = 0.0,
    ) -> None:
        self._durable = start or _NOTHING
        self._view = view
        # (nothing views as nothing: a small upload's cursor costs no range arithmetic)
        self._reported = view(self._durable) if self._durable else _NOTHING
        self.policy = policy or _FINAL_ONLY
        self._last_time = now
        self._last_bytes = 0
        #: ``durable()`` calls made, and seconds spent in them (for a front end's log)
        self.calls = 0
        self.seconds = 0.0

    @property
    def durable(self) -> RangeSet:
        """The writer's latest durable set, in object offsets."""
        return self._durable

    @property
    def reported(self) -> RangeSet:
        """Everything announced so far (with the start), in marker offsets."""
        return self._reported

    # -- when --------------------------------------------------------------------------

    def due(self, now: float, bytes_done: int) -> bool:
        """Whether the policy wants a marker, at ``now`` with ``bytes_done`` received in all."""
        return self.policy.due(now - self._last_time + TIMER_SLACK, bytes_done - self._last_bytes)

    def seconds_until_due(self, now: float) -> float | None:
        return self.policy.seconds_until_due(now - self._last_time)

    def mark_taken(self, now: float, bytes_done: int) -> None:
        """Restart the policy's count (the caller took a marker at ``now``)."""
        self._last_time = now
        self._last_bytes = bytes_done

    # -- what ----------------------------------------------------------------------------

    def accept(self, marker: RangeSet, written: RangeSet | None = None) -> RangeSet:
        """Check a ``durable()`` result and return the ranges to announce (empty when nothing is new).

        ``written``: the ranges whose write returned (with what was resumed),
        when the caller keeps that record; a marker beyond it is a lie.
        """
        if not marker.contains(self._durable):
            raise MarkerBroken(
                f"destination driver returned marker {marker}, which lost ranges of the earlier {self._durable}"
            )
        if written is not None and not written.contains(marker):
            raise MarkerBroken(
                f"destination driver returned marker {marker} with bytes that were never written "
                f"({marker - written})"
            )
        self._durable = marker
        seen = self._view(marker)
        new = seen - self._reported
        if new:
            self._reported = self._reported | seen
        return new

    def take(
        self,
        writer: Durable,
        *,
        written: RangeSet | Callable[[], RangeSet] | None = None,
        grace: float = WRITTEN_GRACE,
    ) -> RangeSet:
        """Ask ``writer.durable()`` and :meth:`accept` the answer; the ranges to announce.

        ``written``: what the caller's writes covered when it asked (a set), or
        how to read that record as it grows under other threads (a function).
        """
        began = time.monotonic()
        try:
            marker = writer.durable()
        finally:
            took = time.monotonic() - began
            self.calls += 1
            self.seconds += took
            for timer in DURABLE_TIMERS:
                timer(took)
        if written is None or isinstance(written, RangeSet):
            return self.accept(marker, written)
        # Bytes whose write returned after durable() started may be in the
        # marker too, so the written ranges are read afterwards, and a write
        # the driver counted whose bookkeeping is a moment behind gets that moment.
        seen = written()
        deadline = time.monotonic() + grace
        while not seen.contains(marker) and time.monotonic() < deadline:
            time.sleep(0.001)
            seen = written()
        return self.accept(marker, seen)


__all__ = [
    "DEFAULT_BYTES",
    "DEFAULT_INTERVAL",
    "Durable",
    "MarkerBroken",
    "MarkerCursor",
    "MarkerPolicy",
]
