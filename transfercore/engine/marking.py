"""Taking the engine's restart markers: ask the destination, record, announce.

:class:`~transfercore.markers.MarkerCursor` asks ``Writer.durable()`` and
checks the answer; here each new marker goes to the journal, then to the
listeners, then to the read-back verifier (which reads only durable bytes).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..contract import Writer
from ..errors import StorageError
from ..markers import MarkerCursor
from ..ranges import RangeSet
from .events import Event, Marker
from .record import RunRecord

#: Markers taken without progress after the final one before a short final marker is an error.
FINAL_MARKER_TRIES = 3


class Markers:
    """The markers of one writer of ``size`` bytes that resumed ``resumed``.

    ``written`` returns the ranges whose write returned (with the resumed
    ones): a marker beyond them is a driver's lie.  ``on_durable`` hears the
    end of each marker's contiguous prefix.
    """

    def __init__(
        self,
        writer: Writer,
        resumed: RangeSet,
        size: int,
        *,
        written: Callable[[], RangeSet],
        record: RunRecord,
        emit: Callable[[Event], None],
        on_durable: Callable[[int], None],
    ) -> None:
        self._writer = writer
        self._size = size
        self._written = written
        self._record = record
        self._emit = emit
        self._on_durable = on_durable
        self.cursor = MarkerCursor(resumed)
        #: The latest marker: what the destination holds durably.
        self.marker = resumed

    def take(self, *, final: bool = False) -> None:
        new = self.cursor.take(self._writer, written=self._written)
        marker = self.cursor.durable
        self.marker = marker
        if new:
            self._record.record_marker(marker)
        if new or final:
            self._emit(Marker(marker, marker.total(), self._size, final))
        self._on_durable(marker.prefix_end())

    def wait_all_durable(self, cancel: threading.Event) -> None:
        """The read-back reads only marked bytes, so every byte must be durable before
        it can finish.  A storage that failed after accepting the last write (HPSS PIO
        fails in a later Execute) leaves the final marker short: that is the failure to
        report, not a wait for bytes that will never come."""
        whole = RangeSet.span(0, self._size) if self._size else RangeSet()
        idle = 0
        while not self.marker.contains(whole):
            if idle >= FINAL_MARKER_TRIES or cancel.is_set():
                raise StorageError(
                    f"the destination made only {self.marker.total()} of {self._size} bytes durable after it "
                    "accepted every byte, so the object cannot be verified or published",
                    hint="nothing was published; run the same command again to resume from the durable part",
                )
            before = self.marker
            self.take()
            idle = idle + 1 if self.marker == before else 0
