"""Restart (111) and performance (112) markers: formatting, parsing, deltas.

A restart marker may only name ranges the storage returned from
``Writer.durable()``; the core's :class:`~transfercore.markers.MarkerCursor`
asks for them, refuses a set that shrinks (the driver broke its monotonic
promise) and gives the new ranges since the previous marker;
:class:`RestartMarkers` formats those deltas as the 111 replies GridFTP sends.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import attrs

from ..errors import RangeSyntaxError
from ..markers import Durable, MarkerBroken, MarkerCursor, MarkerPolicy
from ..ranges import RangeSet
from .control import Reply
from .errors import LocalProtocolError, RemoteProtocolError


@attrs.frozen
class RangeMarker(Reply):
    """A 111 this server sends, with the ranges it names (so nothing parses its own text back)."""

    ranges: RangeSet = attrs.field(factory=RangeSet, eq=False, repr=False)


def restart_marker(ranges: RangeSet) -> Reply:
    if not ranges:
        raise LocalProtocolError("a restart marker needs at least one range")
    return RangeMarker(111, (f"Range Marker {ranges}",), ranges)


@attrs.frozen
class PerfMarker:
    timestamp: float
    stripe_index: int
    stripe_bytes: int
    stripe_count: int = 1


def perf_marker(marker: PerfMarker) -> Reply:
    return Reply(
        112,
        (
            "Perf Marker",
            f"Timestamp:  {marker.timestamp:.1f}",
            f"Stripe Index: {marker.stripe_index}",
            f"Stripe Bytes Transferred: {marker.stripe_bytes}",
            f"Total Stripe Count: {marker.stripe_count}",
            "End.",
        ),
    )


_RANGE_MARKER = re.compile(r"^111[ -]Range Marker\s+(\S+)\s*$")


def parse_range_marker(line: str) -> RangeSet:
    """The ranges of a ``111 Range Marker a-b,c-d`` line."""
    m = _RANGE_MARKER.match(line.strip())
    if not m:
        raise RemoteProtocolError(f"not a range marker: {line[:80]!r}")
    try:
        return RangeSet.parse(m.group(1))
    except RangeSyntaxError as exc:
        raise RemoteProtocolError(f"bad range marker {line[:80]!r}: {exc}") from None


def parse_perf_marker(text: str) -> PerfMarker:
    """A multi-line 112 reply; spacing differs between versions, so keys are matched loosely."""
    fields: dict[str, str] = {}
    for raw in text.splitlines():
        key, sep, value = raw.strip().partition(":")
        if sep:
            fields[" ".join(key.split()).lower()] = value.strip()
    try:
        return PerfMarker(
            timestamp=float(fields["timestamp"]),
            stripe_index=int(fields["stripe index"]),
            stripe_bytes=int(fields["stripe bytes transferred"]),
            stripe_count=int(fields["total stripe count"]),
        )
    except (KeyError, ValueError) as exc:
        raise RemoteProtocolError(f"bad perf marker: {exc}") from None


class RestartMarkers:
    """111 replies for one upload: the core's :class:`MarkerCursor` deltas, formatted.

    ``already_sent`` is what the writer resumed from, in object offsets;
    ``view`` maps object offsets to the data offsets markers name.
    """

    def __init__(
        self, already_sent: RangeSet | None = None, *, view: Callable[[RangeSet], RangeSet] | None = None
    ) -> None:
        self.cursor = MarkerCursor(already_sent, view=view) if view else MarkerCursor(already_sent)

    @property
    def sent(self) -> RangeSet:
        return self.cursor.reported

    def update(self, durable: RangeSet) -> Reply | None:
        """The marker to send for the newest durable set, or ``None`` when nothing is new."""
        try:
            new = self.cursor.accept(durable)
        except MarkerBroken as exc:
            raise LocalProtocolError(f"{exc}; the driver broke its promise") from None
        return restart_marker(new) if new else None

    def final(self, durable: RangeSet) -> Reply | None:
        """The last 111 before 226: everything reported, not only what is new.
        A periodic marker cut short by the end of the transfer (its cursor moved,
        its reply never sent) must not leave a hole in the client's record."""
        self.update(durable)
        return restart_marker(self.sent) if self.sent else None

    def take(self, writer: Durable) -> Reply | None:
        """Ask ``writer.durable()`` (blocking: run it off the event loop); the marker to send, if any."""
        try:
            new = self.cursor.take(writer)
        except MarkerBroken as exc:
            raise LocalProtocolError(f"{exc}; the driver broke its promise") from None
        return restart_marker(new) if new else None


class MarkerSchedule:
    """When markers are due: 112 every ``perf_every`` seconds, 111 every ``restart_every``.

    The 111 interval is the core's :class:`MarkerPolicy` with the client's
    TREV RESTART seconds and no byte limit.  Times are on any monotonic clock
    the caller uses; :meth:`due` tells which markers to send at ``now`` and
    schedules the next ones.  (A 111 is also sent once more before the final
    reply, whatever the schedule.)
    """

    def __init__(self, now: float, restart_every: float, perf_every: float, *, restart: bool = True) -> None:
        self._restart = MarkerPolicy(interval=restart_every, bytes=None) if restart else MarkerPolicy.none()
        self._last_restart = now
        self._perf_every = perf_every
        self._next_perf = now + perf_every

    def _next_restart(self) -> float:
        wait = self._restart.seconds_until_due(0.0)
        return float("inf") if wait is None else self._last_restart + wait

    def next_due(self) -> float:
        return min(self._next_perf, self._next_restart())

    def due(self, now: float) -> tuple[bool, bool]:
        """``(perf, restart)``: which markers to send now."""
        perf = now >= self._next_perf
        restart = self._restart.seconds_until_due(now - self._last_restart) == 0.0
        if perf:
            self._next_perf = now + self._perf_every
        if restart:
            self._last_restart = now
        return perf, restart
