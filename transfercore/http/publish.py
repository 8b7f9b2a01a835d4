"""Publishing finished uploads together: one durable point for the uploads that finish at once.

Each finished upload's worker thread calls :meth:`Publisher.publish` and
blocks until its own object is published and durable.  Calls that arrive
while a batch is being published wait, and the next batch takes all of them
in one :meth:`Driver.complete_batch` (on POSIX: the files synced together,
renamed, each directory synced once).  Nothing is reported published before
the driver returned it as published, so every reply stays a durable fact;
only the number of durable points shrinks.  A driver that keeps the
contract's default ``complete_batch`` (one object after another) publishes
each upload in its own thread, as many at once as finish at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..contract import Driver, Writer

#: Reads a finished object back before it is published; raising refuses it.
Verify = Callable[[Writer], None]


class _Pending:
    __slots__ = ("writer", "verify", "done", "error")

    def __init__(self, writer: Writer, verify: Verify | None) -> None:
        self.writer = writer
        self.verify = verify
        self.done = False
        self.error: BaseException | None = None


class Publisher:
    def __init__(self, driver: Driver, *, batch: bool = True) -> None:
        self.driver = driver
        self._cond = threading.Condition()
        self._queue: list[_Pending] = []
        self._running = False
        self._batches = batch and type(driver).complete_batch is not Driver.complete_batch

    def publish(self, writer: Writer, verify: Verify | None = None) -> None:
        """Make ``writer``'s object durable, verify it, publish it; raise what refused it (it is then aborted)."""
        if not self._batches:
            self._publish_one(writer, verify)
            return
        item = _Pending(writer, verify)
        with self._cond:
            self._queue.append(item)
            while not item.done:
                if self._running:
                    self._cond.wait()
                    continue
                # No batch running: this thread publishes every upload waiting now, its own among them.
                self._running = True
                batch, self._queue = self._queue, []
                self._cond.release()
                try:
                    self._publish(batch)
                finally:
                    self._cond.acquire()
                    self._running = False
                    self._cond.notify_all()
        if item.error is not None:
            raise item.error

    @staticmethod
    def _publish_one(writer: Writer, verify: Verify | None) -> None:
        try:
            if verify is not None:
                writer.durable()  # read_durable reads inside the latest marker only
                verify(writer)
            writer.complete()  # makes the whole object durable itself
        except BaseException:
            try:
                writer.abort()
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
            raise

    def _publish(self, batch: list[_Pending]) -> None:
        checks = {id(item.writer): item.verify for item in batch if item.verify is not None}

        def verify(writer: Writer) -> None:
            check = checks.get(id(writer))
            if check is not None:
                check(writer)

        results: list[BaseException | None]
        try:
            results = list(self.driver.complete_batch([item.writer for item in batch], verify if checks else None))
            if len(results) != len(batch):
                raise RuntimeError(f"{self.driver.name}: complete_batch answered {len(results)} results "
                                   f"for {len(batch)} objects")
        except BaseException as exc:  # the driver failed as a whole: every waiting upload hears of it
            results = [exc] * len(batch)
        for item, error in zip(batch, results, strict=True):
            item.error = error
            item.done = True
