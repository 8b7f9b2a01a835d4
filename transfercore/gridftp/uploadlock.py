"""One upload at a time per destination, within this server (all its worker processes).

Two uploads of one destination (two clients, or a retry that arrives while
the aborted upload is still keeping its durable part) would share the
driver's partial object and the spool, whose names depend only on the
destination: one's clean-up would remove or truncate what the other writes.
An upload therefore holds its destination from before it looks at the
storage until its clean-up is done.  The next one waits for it, a bounded
time (an abort's clean-up takes moments), then is refused with a reply that
says which upload holds the destination.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections.abc import Awaitable, Callable

import attrs

from .errors import ReplyError
from .sharedstate import NO_UPLOAD, SharedRegion, decode_text, encode_text


@attrs.frozen
class _Hold:
    owner: str
    since: float
    #: whether the hold has ended (given to the upload that waits for it)
    ended: Callable[[], bool] | None = None

    def done(self) -> bool:
        return self.ended is not None and self.ended()


class UploadLocks:
    """The destinations being uploaded, and by whom (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, _Hold] = {}

    def try_acquire(self, key: str, owner: str) -> _Hold | None:
        """Hold ``key`` for ``owner``: ``None`` when done, else the hold in the way."""
        with self._lock:
            hold = self._held.get(key)
            if hold is None:
                self._held[key] = _Hold(owner, time.time())
                return None
            # Only a waiter learns how to see the hold's end: an upload that meets
            # no other pays for nothing beyond its entry.
            return attrs.evolve(hold, ended=functools.partial(self._ended_here, key, hold))

    def _ended_here(self, key: str, hold: _Hold) -> bool:
        with self._lock:
            return self._held.get(key) is not hold

    def release(self, key: str) -> None:
        with self._lock:
            self._held.pop(key, None)

    async def acquire(
        self,
        key: str,
        owner: str,
        timeout: float,
        wait: Callable[[Callable[[], bool], float], Awaitable[bool]],
        shown: str,
    ) -> None:
        """Hold ``key``, waiting at most ``timeout`` s for the upload holding it.

        ``wait(done, seconds)`` waits off the loop until ``done()`` or the time is up."""
        deadline = time.monotonic() + timeout
        while True:
            hold = self.try_acquire(key, owner)
            if hold is None:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise ReplyError(
                    450,
                    f"Another upload of {shown} is in progress ({hold.owner}, for "
                    f"{time.time() - hold.since:.0f} s); nothing was written.",
                    hint="retry when it has ended, or abort it",
                )
            await wait(hold.done, left)


class SharedUploadLocks(UploadLocks):
    """The same, held for every worker process of one server (see :mod:`.sharedstate`).

    A destination is held in this process first, then in the shared table
    under a digest of its key; a hold in another worker is waited for by
    looking at its record."""

    def __init__(self, region: SharedRegion, worker: int) -> None:
        super().__init__()
        self.region = region
        self.worker = worker
        self._records: dict[str, int] = {}

    def try_acquire(self, key: str, owner: str) -> _Hold | None:
        hold = super().try_acquire(key, owner)
        if hold is not None:
            return hold
        digest = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=16).digest()
        region, table = self.region, self.region.uploads
        with region.locked():
            free: int | None = None
            for index, (held, _worker, since, who) in region.records(table):
                if held == digest:
                    super().release(key)
                    return _Hold(decode_text(who), since, ended=functools.partial(self._ended, index, digest))
                if free is None and held == NO_UPLOAD:
                    free = index
            free = region.spare(table, free)
            if free is None:
                super().release(key)
                raise ReplyError(450, "Too many uploads in progress on this server; nothing was written.",
                                 hint="retry later")
            region.write(table, free, digest, self.worker, time.time(), encode_text(owner, 96))
            self._records[key] = free
        return None

    def _ended(self, index: int, digest: bytes) -> bool:
        return bool(self.region.read(self.region.uploads, index)[0] != digest)

    def release(self, key: str) -> None:
        index = self._records.pop(key, None)
        if index is not None:
            with self.region.locked():
                self.region.clear(self.region.uploads, index)
        super().release(key)


#: Every server in this process shares one set: they may serve the same storage.
UPLOADS = UploadLocks()
