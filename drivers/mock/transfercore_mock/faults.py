"""Injected faults and deliberate lies, chosen by URL options.

Counters belong to one driver instance (one opened URL) and each fault fires
once per instance: a transfer that reopens the same URL after a failure meets
the fault again only after as many more bytes or calls, so a resuming client
still makes progress, as on a flaky device.
"""

from __future__ import annotations

import errno
import threading
import time
from typing import Any

import attrs

from transfercore.errors import StorageError

LIES = ("early-marker", "wide-marker", "forget-record", "racy-marker", "loose-reads")


@attrs.frozen
class FaultPlan:
    fail_after: int | None = None
    fail_durable: int | None = None
    slow: float = 0.0
    lie: str | None = None
    corrupt: bool = False
    #: The store keeps the byte at this offset of every written object with its bits flipped.
    flip_at: int | None = None

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> FaultPlan:
        return cls(
            fail_after=settings.get("fail_after"),
            fail_durable=settings.get("fail_durable"),
            slow=settings.get("slow") or 0.0,
            lie=settings.get("lie"),
            corrupt=bool(settings.get("corrupt")),
            flip_at=settings.get("flip_at"),
        )


class FaultState:
    """The counters of one driver instance."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._lock = threading.Lock()
        self.bytes_written = 0
        self.durable_calls = 0
        self._write_fired = False
        self._durable_fired = False

    def before_write(self, length: int, what: str) -> None:
        """Raise the injected write failure if this write would cross ``fail_after`` bytes."""
        if self.plan.slow:
            time.sleep(self.plan.slow)
        limit = self.plan.fail_after
        with self._lock:
            if limit is not None and not self._write_fired and self.bytes_written + length > limit:
                self._write_fired = True
                raise StorageError(
                    f"injected fault: {what} fails after {limit} bytes (fail_after={limit})",
                    errno=errno.EIO,
                    hint="resume from the last durable marker",
                )
            self.bytes_written += length

    def damage(self, offset: int, chunk: bytes) -> bytes:
        """The bytes as the store will keep them: ``flip_at`` damages one byte on
        the way to the media, as a faulty device or controller would."""
        at = self.plan.flip_at
        if at is None or not offset <= at < offset + len(chunk):
            return chunk
        damaged = bytearray(chunk)
        damaged[at - offset] ^= 0xFF
        return bytes(damaged)

    def before_durable(self, what: str) -> None:
        nth = self.plan.fail_durable
        with self._lock:
            self.durable_calls += 1
            if nth is not None and not self._durable_fired and self.durable_calls >= nth:
                self._durable_fired = True
                raise StorageError(
                    f"injected fault: durability call {self.durable_calls} on {what} fails (fail_durable={nth})",
                    errno=errno.EIO,
                    hint="resume from the last durable marker",
                )
