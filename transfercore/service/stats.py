"""What a server counts for its operators: plain numbers, no exporter needed.

The server adds to a :class:`ServiceStats` as transfers end and markers are
sent; :mod:`.metrics` exports it (with the live figures of the transfers in
progress) when ``--metrics-port`` asks for it.  Counting costs a few integer
additions per transfer whether or not anything is exported.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import attrs

#: Upper bounds (seconds) of the durability latency histogram: one ``durable()`` call (fsync, batch).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

#: Reply codes of a transfer's final reply, by the reason an operator acts on.
REASONS = {
    226: "complete",
    425: "no_data_connection",
    426: "aborted_or_connection_lost",
    450: "busy",
    451: "local_error",
    452: "no_space",
    552: "no_space",
    501: "bad_request",
    503: "bad_sequence",
    530: "not_logged_in",
    550: "not_found_or_denied",
    553: "bad_name",
    0: "connection_closed",
}


def reason(code: int) -> str:
    return REASONS.get(code, "other")


@attrs.frozen
class Live:
    """Figures of what runs now, read at the moment of a scrape."""

    #: bytes received by every upload, those in progress included, read in one step with the
    #: counted totals so a transfer ending during the scrape is seen once, never twice
    received: int = 0
    sent: int = 0
    #: sessions by state: ``connected`` (not logged in), ``idle``, ``transferring``
    sessions: dict[str, int] = attrs.field(factory=dict)
    #: bytes in the spool directory (``--spool-dir``) now, and free bytes of its file system
    spool_bytes: int | None = None
    spool_free: int | None = None
    #: free bytes of the file system under the served root, when the storage has local paths
    storage_free: int | None = None


class Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
                break
        self.count += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, int]]:
        out, running = [], 0
        for bound, n in zip(self.buckets, self.counts, strict=True):
            running += n
            out.append((repr(bound), running))
        out.append(("+Inf", self.count))
        return out


class ServiceStats:
    """Totals since the server started; safe to add to from worker threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bytes_received = 0
        self.bytes_sent = 0
        self.bytes_durable = 0
        self.markers: Counter[str] = Counter()
        #: (TYPE, reason) -> transfers
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.sessions_total = 0
        self.logins_refused = 0
        self.reloads: Counter[str] = Counter()
        self.durable_latency = Histogram(LATENCY_BUCKETS)

    def add(self, name: str, n: int) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + n)

    def marker(self, kind: str) -> None:
        with self.lock:
            self.markers[kind] += 1

    def outcome(self, kind: str, code: int) -> None:
        with self.lock:
            self.outcomes[(kind, reason(code))] += 1

    def durable_call(self, seconds: float) -> None:
        with self.lock:
            self.durable_latency.observe(seconds)

    def reload(self, result: str) -> None:
        with self.lock:
            self.reloads[result] += 1


    def snapshot(self, live: Live) -> dict[str, Any]:
        """The totals and ``live`` as plain data (JSON), for another process to add up."""
        with self.lock:
            return {
                "bytes_durable": self.bytes_durable,
                "markers": dict(self.markers),
                "outcomes": [[kind, why, n] for (kind, why), n in self.outcomes.items()],
                "sessions_total": self.sessions_total,
                "logins_refused": self.logins_refused,
                "reloads": dict(self.reloads),
                "latency": [self.durable_latency.counts, self.durable_latency.count, self.durable_latency.sum],
                "live": attrs.asdict(live),
            }


def merged(snapshots: list[dict[str, Any]]) -> tuple[ServiceStats, Live]:
    """The totals of several processes' :meth:`ServiceStats.snapshot`, and what runs now in all of them."""
    total = ServiceStats()
    received = sent = 0
    sessions: Counter[str] = Counter()
    disk: dict[str, int | None] = {"spool_bytes": None, "spool_free": None, "storage_free": None}
    for snap in snapshots:
        total.bytes_durable += snap["bytes_durable"]
        total.markers.update(snap["markers"])
        for kind, why, n in snap["outcomes"]:
            total.outcomes[(kind, why)] += n
        total.sessions_total += snap["sessions_total"]
        total.logins_refused += snap["logins_refused"]
        total.reloads.update(snap["reloads"])
        counts, count, seconds = snap["latency"]
        hist = total.durable_latency
        hist.counts = [a + b for a, b in zip(hist.counts, counts, strict=True)]
        hist.count += count
        hist.sum += seconds
        live = snap["live"]
        received += live["received"]
        sent += live["sent"]
        sessions.update(live["sessions"])
        for key in disk:
            if disk[key] is None:
                disk[key] = live.get(key)
    total.bytes_received, total.bytes_sent = received, sent
    return total, Live(received=received, sent=sent, sessions=dict(sessions), **disk)


__all__ = ["LATENCY_BUCKETS", "Live", "ServiceStats", "merged", "reason"]
