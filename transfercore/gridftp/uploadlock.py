"""One upload at a time per destination, within this server.

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

import threading
import time
from collections.abc import Awaitable, Callable

import attrs

from .errors import ReplyError


@attrs.frozen
class _Hold:
    owner: str
    since: float
    released: threading.Event = attrs.field(factory=threading.Event)


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
            return hold

    def release(self, key: str) -> None:
        with self._lock:
            hold = self._held.pop(key, None)
        if hold is not None:
            hold.released.set()

    async def acquire(
        self,
        key: str,
        owner: str,
        timeout: float,
        wait: Callable[[threading.Event, float], Awaitable[bool]],
        shown: str,
    ) -> None:
        """Hold ``key``, waiting at most ``timeout`` s for the upload holding it (``wait`` blocks off the loop)."""
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
            await wait(hold.released, left)


#: Every server in this process shares one set: they may serve the same storage.
UPLOADS = UploadLocks()
