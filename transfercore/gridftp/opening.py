"""An upload's destination being opened: on the event loop, and in the worker thread that opens it.

:class:`Opened` is what the event loop knows once the object (or the spool)
is open; :class:`TripLink` is what the thread that opens a small upload and
receives its first connection shares with the connections received beside it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from ..contract import Writer
from ..errors import TransferAborted
from ..markers import Durable
from ..reorder import ReorderWindow
from .datachannel import Deliver
from .latetask import LateTask
from .markers import RestartMarkers

D = TypeVar("D", bound=Durable)
#: How often a wait in an upload (for its data connections, for its destination to open) looks for an abort.
STOP_POLL = 0.2


class Opened(Generic[D]):
    """An upload's destination once open (its writer, or its spool; set on the event loop), its markers and their timer."""

    def __init__(self) -> None:
        self.writer: D | None = None
        self.markers: RestartMarkers | None = None
        self.timer: LateTask | None = None
        #: what starting the upload on the event loop raised
        self.error: BaseException | None = None

    def open(self, writer: D, start: Callable[[D], None]) -> None:
        """On the event loop, once the destination is open: keep it, then ``start`` it (the 150, the markers).

        An error of ``start`` is kept for :meth:`ready` to raise: called back
        from a worker thread, it would only be logged.
        """
        self.writer = writer
        try:
            start(writer)
        except BaseException as exc:  # noqa: BLE001 - raised by ready()
            self.error = exc

    def ready(self) -> tuple[D, RestartMarkers]:
        if self.error is not None:
            raise self.error
        assert self.writer is not None and self.markers is not None, "the destination was opened"
        return self.writer, self.markers

    async def stop_timer(self) -> None:
        if self.timer is not None:
            await self.timer.stop()


class TripLink:
    """Between the worker thread that opens a small upload and the connections received beside it.

    The thread opens the object (or spool) and sets where blocks go; a new
    data connection the client added meanwhile waits here until then, and
    fails if the open failed.  What the trip also wrote (a spooled upload) is
    left here for the event loop.
    """

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._ready = threading.Event()
        self._deliver: Deliver | None = None
        self.window: ReorderWindow | None = None
        #: a spooled upload's object, written in the trip, and its size
        self.written: tuple[Writer, int] | None = None
        #: what writing it raised
        self.store_error: BaseException | None = None

    def opened(self, deliver: Deliver, window: ReorderWindow | None) -> None:
        self._deliver, self.window = deliver, window
        self._ready.set()

    def failed(self) -> None:
        self._ready.set()

    def deliver(self, offset: int, data: memoryview, release: Callable[[], None] | None = None) -> None:
        """For the other connections' threads: ``data`` where the trip's blocks go, once it knows
        (given away with ``release``, as :func:`~.datachannel.receive_mode_e` does with a pool)."""
        while not self._ready.wait(STOP_POLL):
            if self._stop.is_set():
                raise TransferAborted("transfer aborted on request")
        if self._deliver is None:
            raise TransferAborted("the upload's destination could not be opened")
        if release is None:
            self._deliver(offset, data)
        else:
            self._deliver(offset, data, release)  # type: ignore[call-arg]
