"""Group commit: uploads that finish at about the same time share one durable point (sans-I/O).

A front end that promises durability per object (GridFTP's ``226``, an HTTP
``201``) pays one durable point per object when it completes each alone:
an ``fsync`` of the file, one of its directory.  Many concurrent uploads of
small objects spend most of their time there.  Completed together
(``Driver.complete_batch``: one ``syncfs``, or concurrent syncs, then each
directory once) they pay it once per batch, and each is still reported done
only after the batch returned it as published.

:class:`GroupCommit` decides *when* a batch is committed; the caller does
the I/O and reports back.  It is a classic leader/follower group commit:

* while one batch is being committed (or ``max_inflight`` batches), uploads
  that finish queue up, and the next batch takes them all at once: the
  busier the storage, the larger the batches, and an idle server commits a
  lone upload at once;
* when nothing is being committed, the queue waits at most ``linger``
  seconds for uploads still receiving data (it never waits when every
  running upload is already queued);
* a batch closes at ``max_count`` objects or ``max_bytes`` bytes, so a
  flood is committed in bounded pieces and a slow trickle is never held
  back longer than ``linger``.

Objects of ``alone_from`` bytes or more are not grouped (:meth:`groups`):
their own sync is long, and grouping would make the small objects behind
them wait for it.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

import attrs

T = TypeVar("T")


@attrs.frozen
class CommitPolicy:
    #: Most objects in one batch.
    max_count: int = 64
    #: A batch closes once it holds this many bytes.
    max_bytes: int = 64 * 1024 * 1024
    #: Longest a finished upload waits for running ones to join its batch (seconds).
    linger: float = 0.002
    #: Objects of this size or more are completed alone.
    alone_from: int = 8 * 1024 * 1024
    #: Batches being committed at once (the file system may merge their syncs too).
    max_inflight: int = 1

    def __attrs_post_init__(self) -> None:
        if (self.max_count < 1 or self.max_bytes < 1 or self.linger < 0 or self.alone_from < 0
                or self.max_inflight < 1):
            raise ValueError(f"invalid group-commit policy {self}")

    def groups(self, size: int) -> bool:
        """Whether an object of ``size`` bytes joins a batch (else it is completed alone)."""
        return size < self.alone_from


@attrs.frozen
class _Queued(Generic[T]):
    item: T
    size: int
    since: float


class GroupCommit(Generic[T]):
    """When to commit which of the queued uploads; times on the caller's monotonic clock.

    Per upload: :meth:`started` when it begins receiving data, then exactly
    one of :meth:`submit` (it is complete and waits for its durable point)
    or :meth:`left` (it ended otherwise).  After each of these and at
    :meth:`deadline`, the caller asks :meth:`take`; a batch it returns is
    committed, then reported with :meth:`committed`.
    """

    def __init__(self, policy: CommitPolicy | None = None) -> None:
        self.policy = policy or CommitPolicy()
        self._queue: deque[_Queued[T]] = deque()
        self._queued_bytes = 0
        self._running = 0
        self._inflight = 0
        #: Batches committed, and objects in them (for logs and tests).
        self.batches = 0
        self.objects = 0

    @property
    def running(self) -> int:
        """Uploads started and neither submitted nor gone."""
        return self._running

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def committing(self) -> bool:
        """Whether a batch is being committed."""
        return self._inflight > 0

    def started(self) -> None:
        self._running += 1

    def left(self) -> None:
        """An upload that started ended without submitting (it failed, or was completed alone)."""
        if self._running <= 0:
            raise RuntimeError("GroupCommit.left() without a matching started()")
        self._running -= 1

    def submit(self, item: T, size: int, now: float) -> None:
        """A started upload is complete: ``item`` waits for the next batch."""
        self.left()
        self._queue.append(_Queued(item, size, now))
        self._queued_bytes += size

    def _full(self) -> bool:
        return len(self._queue) >= self.policy.max_count or self._queued_bytes >= self.policy.max_bytes

    def deadline(self) -> float | None:
        """When :meth:`take` will return a batch at the latest, if nothing else happens;
        ``None`` when it waits for :meth:`committed` or for a submission."""
        if self._inflight >= self.policy.max_inflight or not self._queue:
            return None
        if self._full() or self._running == 0:
            return self._queue[0].since
        return self._queue[0].since + self.policy.linger

    def take(self, now: float) -> list[T] | None:
        """The batch to commit now, or ``None`` (ask again at :meth:`deadline`)."""
        due = self.deadline()
        if due is None or now < due:
            return None
        batch: list[T] = []
        size = 0
        while self._queue and len(batch) < self.policy.max_count:
            if batch and size + self._queue[0].size > self.policy.max_bytes:
                break
            queued = self._queue.popleft()
            batch.append(queued.item)
            size += queued.size
        self._queued_bytes -= size
        self._inflight += 1
        self.batches += 1
        self.objects += len(batch)
        return batch

    def committed(self) -> None:
        """The batch :meth:`take` returned is done (each object published or failed)."""
        if not self._inflight:
            raise RuntimeError("GroupCommit.committed() without a batch in progress")
        self._inflight -= 1


__all__ = ["CommitPolicy", "GroupCommit"]
