"""Restart (111) and performance (112) markers: formatting, parsing, deltas.

A restart marker may only name ranges the storage returned from
``Writer.durable()``; :class:`RestartMarkers` turns those cumulative sets
into the deltas GridFTP sends (new ranges since the previous marker, nothing
when nothing is new) and refuses a set that shrinks, which would mean the
driver broke its monotonic promise.
"""

from __future__ import annotations

import re

import attrs

from ..errors import RangeSyntaxError
from ..ranges import RangeSet
from .control import Reply
from .errors import LocalProtocolError, RemoteProtocolError


def restart_marker(ranges: RangeSet) -> Reply:
    if not ranges:
        raise LocalProtocolError("a restart marker needs at least one range")
    return Reply.one(111, f"Range Marker {ranges}")


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
    """Deltas of cumulative durable sets, for 111 replies."""

    def __init__(self, already_sent: RangeSet | None = None) -> None:
        self._sent = already_sent or RangeSet()

    @property
    def sent(self) -> RangeSet:
        return self._sent

    def update(self, durable: RangeSet) -> Reply | None:
        """The marker to send for the newest durable set, or ``None`` when nothing is new."""
        if not durable.contains(self._sent):
            raise LocalProtocolError(
                f"durable set {durable} lost ranges reported before ({self._sent}); the driver broke its promise"
            )
        new = durable - self._sent
        if not new:
            return None
        self._sent = durable
        return restart_marker(new)


class MarkerSchedule:
    """When markers are due: 112 every ``perf_every`` seconds, 111 every ``restart_every``.

    Times are on any monotonic clock the caller uses; :meth:`due` tells
    which markers to send at ``now`` and schedules the next ones.  (A 111 is
    also sent once more before the final reply, whatever the schedule.)
    """

    def __init__(self, now: float, restart_every: float, perf_every: float, *, restart: bool = True) -> None:
        self._restart_every = restart_every
        self._perf_every = perf_every
        self._next_perf = now + perf_every
        self._next_restart = now + restart_every if restart else float("inf")

    def next_due(self) -> float:
        return min(self._next_perf, self._next_restart)

    def due(self, now: float) -> tuple[bool, bool]:
        """``(perf, restart)``: which markers to send now."""
        perf = now >= self._next_perf
        restart = now >= self._next_restart
        if perf:
            self._next_perf = now + self._perf_every
        if restart:
            self._next_restart = now + self._restart_every
        return perf, restart
