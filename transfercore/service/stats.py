"""What a server counts for its operators: plain numbers, no exporter needed.

The server adds to a :class:`ServiceStats` as transfers end and markers are
sent; :mod:`.metrics` exports it (with the live figures of the transfers in
progress) when ``--metrics-port`` asks for it.  Counting costs a few integer
additions per transfer whether or not anything is exported.
"""

from __future__ import annotations

import threading
from collections import Counter

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


__all__ = ["LATENCY_BUCKETS", "Live", "ServiceStats", "reason"]
