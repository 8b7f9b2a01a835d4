"""The asyncio form of a transfer, for services: an awaitable run and an async iterator of events.

The transfer itself runs in a thread of its own (its streams are threads, and
storage calls block); the event loop only waits for it and receives its
events.  Cancelling the task that awaits :meth:`AsyncTransfer.run` stops the
transfer the way :meth:`Transfer.cancel` does: a marker is saved and the
journal records the run as interrupted, so a new transfer of the same source
and destination with the same journal resumes it.  The task is cancelled only
once that state is saved.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

from ..errors import TransferCoreError
from ..journal import Journal
from .events import Event
from .options import TransferOptions
from .transfer import Transfer, TransferResult, Where

#: Ends the event stream.
_END: Any = object()


class AsyncTransfer:
    """One transfer driven from asyncio.  Await :meth:`run` once; iterate :meth:`events` meanwhile.

    ::

        transfer = AsyncTransfer(source, destination, journal=journal)
        task = asyncio.create_task(transfer.run())
        async for event in transfer.events():
            ...
        result = await task

    Events are queued from the moment :meth:`run` starts, so an iterator
    started later still sees them all; the iterator ends after the last
    event of the run (``Done``, ``UpToDate``, ``Failed`` or ``Interrupted``).
    """

    def __init__(
        self,
        source: Where,
        destination: Where,
        options: TransferOptions | None = None,
        *,
        journal: Journal | None = None,
    ) -> None:
        self.transfer = Transfer(source, destination, options, journal=journal)
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._iterating = False
        self.transfer.add_listener(self._forward)

    @property
    def transfer_id(self) -> int | None:
        """The journal's id of this transfer, once known."""
        return self.transfer.transfer_id

    def cancel(self) -> None:
        """Stop the transfer at its next step; :meth:`run` then raises ``TransferAborted``."""
        self.transfer.cancel()

    async def run(self) -> TransferResult:
        """Run the transfer to its end and return its result; raises what :meth:`Transfer.run` raises."""
        if self._loop is not None:
            raise TransferCoreError("an AsyncTransfer runs once; create a new one to copy again")
        loop = self._loop = asyncio.get_running_loop()
        done: asyncio.Future[TransferResult] = loop.create_future()

        def settle(result: TransferResult | None, error: BaseException | None) -> None:
            if done.done():
                return
            if error is not None:
                done.set_exception(error)
            else:
                assert result is not None
                done.set_result(result)

        def work() -> None:
            result: TransferResult | None = None
            error: BaseException | None = None
            try:
                result = self.transfer.run()
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
                error = exc
            _call_soon(loop, settle, result, error)
            _call_soon(loop, self._queue.put_nowait, _END)

        threading.Thread(target=work, name="transfercore-transfer", daemon=True).start()
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            self.transfer.cancel()
            # The marker and the journal's state are saved before the task
            # ends, so whoever cancelled it can start the resume at once.
            while not done.done():
                try:
                    await asyncio.wait({done})
                except asyncio.CancelledError:
                    continue
            if not done.cancelled():
                done.exception()  # consumed: the cancellation is what the caller sees
            raise

    async def events(self) -> AsyncIterator[Event]:
        """Every event of the run, in order; ends when the run ends.  One iterator per transfer."""
        if self._iterating:
            raise TransferCoreError("the events of a transfer can be iterated once")
        self._iterating = True
        while True:
            event = await self._queue.get()
            if event is _END:
                return
            yield event

    def _forward(self, event: Event) -> None:
        # Called in the transfer's thread.
        if self._loop is not None:
            _call_soon(self._loop, self._queue.put_nowait, event)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Any, *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        pass  # the loop is closed: nobody is left to tell


async def copy_async(
    source: Where,
    destination: Where,
    options: TransferOptions | None = None,
    *,
    journal: Journal | None = None,
) -> TransferResult:
    """Copy one object from asyncio and return the result; see :class:`AsyncTransfer`."""
    return await AsyncTransfer(source, destination, options, journal=journal).run()
