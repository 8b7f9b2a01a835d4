"""Completing the uploads of all sessions in groups: the asyncio shell of :mod:`transfercore.groupcommit`.

One :class:`Committer` per server and driver.  An upload takes a
:class:`Ticket` when it starts receiving; once every byte is in, it hands
its writer to :meth:`Ticket.commit` and waits: the writers that finish at
about the same time, in any session, go to ``Driver.complete_batch``
together (one ``syncfs`` or concurrent syncs, then each directory once), and
each waiter returns only when its object is durable and published, so its
``226`` keeps its promise.  The decisions (when, which) are
:class:`~transfercore.groupcommit.GroupCommit`'s; this module only runs the
batch in a worker thread and wakes the waiters.

A driver that keeps the default ``complete_batch`` (one ``complete()`` after
another) gains nothing from a group and would lose the concurrency of
separate completions: its writers are completed alone, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..contract import Driver, Writer
from ..groupcommit import CommitPolicy, GroupCommit

log = logging.getLogger("transfercore.gridftp")

#: Runs a blocking call off the event loop.
Run = Callable[..., Awaitable[Any]]


def batches(driver: Driver) -> bool:
    """Whether ``driver`` completes a batch with fewer durable points than one per object."""
    return type(driver).complete_batch is not Driver.complete_batch


class Committer:
    def __init__(self, driver: Driver, run: Run, policy: CommitPolicy | None = None) -> None:
        self.driver = driver
        self.enabled = driver is not None and batches(driver)
        self.logic: GroupCommit[tuple[Writer, asyncio.Future[None]]] = GroupCommit(policy)
        self._run = run
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    def ticket(self) -> Ticket:
        """For an upload that starts receiving now (so a finished one may wait for it a moment)."""
        return Ticket(self)

    def _kick(self) -> None:
        loop = asyncio.get_running_loop()
        batch = self.logic.take(loop.time())
        if batch is not None:
            task = loop.create_task(self._commit(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        due = self.logic.deadline()
        if due is not None and (self._timer is None or due < self._timer_at):
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = due
            self._timer = loop.call_at(due, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._kick()

    async def _commit(self, batch: list[tuple[Writer, asyncio.Future[None]]]) -> None:
        writers = [writer for writer, _ in batch]
        started = time.perf_counter()
        try:
            results: list[BaseException | None] = await self._run(self.driver.complete_batch, writers)
        except BaseException as exc:  # noqa: BLE001 - each waiter gets the error; nothing was promised
            log.warning("completing a batch of %d uploads failed: %s", len(writers), exc)
            results = [exc] * len(writers)
        finally:
            self.logic.committed()
            log.debug("completed %d uploads together in %.1f ms", len(writers), (time.perf_counter() - started) * 1e3)
        for (_, waiter), error in zip(batch, results, strict=True):
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            elif isinstance(error, asyncio.CancelledError):
                waiter.cancel()  # the server is shutting down
            else:
                waiter.set_exception(error)
        self._kick()


class Ticket:
    """One upload's place in its committer: :meth:`commit` once, or :meth:`release`."""

    def __init__(self, committer: Committer) -> None:
        self._committer = committer
        self._open = True
        committer.logic.started()

    def release(self) -> None:
        """The upload ends without committing (it failed); idempotent."""
        if self._open:
            self._open = False
            self._committer.logic.left()
            self._committer._kick()

    async def commit(self, writer: Writer, size: int) -> None:
        """Complete ``writer`` (``size`` bytes): on return it is durable and published; raises its error."""
        committer = self._committer
        if not self._open:
            raise RuntimeError("an upload's ticket commits once")
        if not (committer.enabled and committer.logic.policy.groups(size)):
            self.release()
            await committer._run(writer.complete)
            return
        self._open = False
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        committer.logic.submit((writer, waiter), size, asyncio.get_running_loop().time())
        committer._kick()
        try:
            await asyncio.shield(waiter)
        except asyncio.CancelledError:
            # The batch goes on with this writer: its outcome must be known
            # before the caller cleans up (it must not abort a writer being published).
            with contextlib.suppress(BaseException):
                await waiter
            raise


__all__ = ["Committer", "Ticket", "batches"]
