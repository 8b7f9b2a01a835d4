"""Ordered delivery: blocks from many producers reach one sink in ascending order, with no holes.

A destination that declares ``ordered_writes`` (HPSS PIO) must see its bytes
in ascending order, while the bytes come from several producers at once: the
engine's streams, the parallel data connections of a GridFTP MODE E upload,
any other front end.  :class:`ReorderWindow` is the one piece that orders
them, for all of them.

Producers call :meth:`ReorderWindow.put` with the block they hold.  The block
that is next goes straight to the sink from the producer's own buffer (no
copy).  A later block is copied into the window while the window has room
(``capacity`` bytes), so its producer can go on reading its connection; a
block given away with a release (:mod:`transfercore.blockpool`) is kept
as it is, and reaches a sink that takes ownership (``handover``, a
writer's :meth:`~transfercore.contract.Writer.write_owned`) still uncopied;
when the window is full the producer waits, stops reading, and the sender's
TCP window closes: back-pressure, never the whole object in memory.

The window starts small (:data:`START`) and doubles, up to ``capacity``,
only when it is full and starved: no block is being delivered and the next
one has not come for :data:`GROW_AFTER` seconds (a connection that fell
behind the others).  A window that is full because the sink is slow does
not grow: more blocks held would not move the sink faster, only take
memory (a full 32 MiB in every 1 GiB upload into HPSS before).  With
``capacity=0`` the window is a turnstile: every producer waits with its own
block until that block is next (what the engine wants, its streams already
hold one block each).

The window knows which bytes it expects (a :class:`~transfercore.ranges.RangeSet`),
so a block outside them, overlapping bytes already delivered or waiting, is
refused with :class:`OutOfOrder` instead of reaching the storage.  A
producer that waits longer than ``stall_timeout`` for a block that never
comes (a sender that does not send in order on each connection, a
connection that died) gets :class:`WindowStalled`.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import InvalidWrite, TransferCoreError
from .ranges import ByteRange, RangeSet

Sink = Callable[[int, memoryview], None]
#: ``handover(offset, view, release)``: a sink that keeps the buffer and calls ``release`` when done.
Handover = Callable[[int, memoryview, Callable[[], None]], None]


#: Bytes a window with room for reordering may hold at first.
START = 4 * 1024 * 1024
#: Seconds a full window waits for its next block, none being delivered, before it may grow.
GROW_AFTER = 0.01


class Stopped(Exception):
    """Raised in a producer waiting at the window when the transfer stops."""


class OutOfOrder(InvalidWrite):
    """A block outside the expected bytes, or overlapping bytes already delivered or waiting."""


class WindowStalled(TransferCoreError):
    """The next expected block did not come while the window was full."""


class ReorderWindow:
    """Deliver the bytes of ``expected`` to ``sink`` in ascending order.

    ``sink(offset, view)`` is called by one producer at a time, in order; it
    may keep ``view`` only until it returns.  ``sink`` may be ``None`` for a
    window used only through :meth:`turn`.  ``handover``, where given, is
    called instead for blocks put with a release: it owns them from then on.
    """

    def __init__(
        self,
        expected: RangeSet,
        sink: Sink | None = None,
        *,
        capacity: int = 0,
        stall_timeout: float | None = None,
        handover: Handover | None = None,
    ) -> None:
        if capacity < 0:
            raise ValueError("capacity must be at least 0")
        self._ranges = list(expected.ranges)
        self._range_index = 0
        self._next = self._ranges[0].start if self._ranges else 0
        self._sink = sink
        self._handover = handover
        self._capacity = capacity
        # what may be held now: grows towards capacity when the window starves (see the module)
        self._limit = min(capacity, START)
        self._moved_at = time.monotonic()
        self._stall_timeout = stall_timeout
        self._cond = threading.Condition()
        # Blocks waiting for their turn: sorted offsets and the copies (or given blocks) they hold.
        self._offsets: list[int] = []
        self._held: dict[int, bytes | memoryview] = {}
        self._releases: dict[int, Callable[[], None]] = {}
        self._held_bytes = 0
        self._busy = False  # a producer is in the sink (or in a turn)
        self._stopped: BaseException | None = None
        self._delivered = 0
        #: Most bytes held in the window at once (for tests and figures).
        self.peak_held = 0

    # -- what the window knows ----------------------------------------------------

    @property
    def delivered(self) -> int:
        """Bytes delivered to the sink so far."""
        with self._cond:
            return self._delivered

    @property
    def limit(self) -> int:
        """Bytes the window may hold now (at most ``capacity``)."""
        with self._cond:
            return self._limit

    @property
    def held(self) -> int:
        """Bytes copied into the window, waiting for their turn."""
        with self._cond:
            return self._held_bytes

    @property
    def complete(self) -> bool:
        """Every expected byte has been delivered."""
        with self._cond:
            return self._range_index >= len(self._ranges)

    def missing(self) -> RangeSet:
        """The expected bytes not yet delivered (held ones included)."""
        with self._cond:
            rest = [ByteRange(self._next, r.end) for r in self._ranges[self._range_index : self._range_index + 1]]
            rest += self._ranges[self._range_index + 1 :]
            return RangeSet(tuple(r for r in rest if r.end > r.start))

    # -- producers ----------------------------------------------------------------------

    def put(
        self, offset: int, data: bytes | bytearray | memoryview, release: Callable[[], None] | None = None
    ) -> None:
        """Hand over the block at ``offset``; returns once it is delivered or held.

        Without ``release`` the caller may reuse ``data``'s buffer as soon as
        this returns.  With it the block is given away: the caller never
        touches the buffer again, the window keeps it without a copy, and
        ``release`` is called once nothing reads it (by the ``handover``, or
        here after the sink or when the window stops; not after an error
        raised here, when the buffer is simply dropped).
        """
        view = memoryview(data).cast("B")
        n = len(view)
        if n == 0:
            return
        with self._cond:
            deadline = self._deadline()
            while True:
                self._raise_if_stopped()
                # Checked again after every wait: another producer may have sent these bytes meanwhile.
                self._check(offset, n)
                if offset == self._next and not self._busy:
                    self._busy = True
                    break
                if offset != self._next and self._held_bytes + n <= self._limit:
                    if release is None:
                        self._hold(offset, bytes(view))
                    else:
                        self._hold(offset, view)
                        self._releases[offset] = release
                    return
                deadline = self._wait(deadline, offset)
        self._deliver(offset, view, release)

    @contextmanager
    def turn(self, offset: int, length: int) -> Iterator[None]:
        """Wait until ``[offset, offset + length)`` is next, run the body, then pass the turn on.

        For a stage that must happen in order but produces its bytes itself
        (a read from a source that must be read in order).  When the body
        raises, the turn is not passed on: no later block goes through after
        a hole, and the error is expected to stop the transfer.
        """
        with self._cond:
            deadline = self._deadline()
            while True:
                self._raise_if_stopped()
                self._check(offset, length)
                if offset == self._next and not self._busy:
                    self._busy = True
                    break
                deadline = self._wait(deadline, offset)
        try:
            yield
        except BaseException:
            self.stop(None)
            raise
        with self._cond:
            self._advance(length)
            self._busy = False
            self._cond.notify_all()

    def stop(self, error: BaseException | None = None) -> None:
        """Wake every waiting producer: they raise ``error`` (or :class:`Stopped`)."""
        with self._cond:
            if self._stopped is None:
                self._stopped = error if error is not None else Stopped()
            self._offsets.clear()
            self._held.clear()
            self._held_bytes = 0
            releases, self._releases = self._releases, {}
            self._cond.notify_all()
        for release in releases.values():
            release()

    # -- internals ------------------------------------------------------------------------

    def _deliver(self, offset: int, view: memoryview, release: Callable[[], None] | None) -> None:
        """Run the sink for the producer's own block, then for held blocks that became next."""
        try:
            while True:
                if release is not None and self._handover is not None:
                    self._handover(offset, view, release)
                else:
                    if self._sink is not None:
                        self._sink(offset, view)
                    if release is not None:
                        release()
                with self._cond:
                    self._advance(len(view))
                    if self._stopped is not None or not self._offsets or self._offsets[0] != self._next:
                        self._busy = False
                        self._cond.notify_all()
                        return
                    offset = self._offsets.pop(0)
                    held = self._held.pop(offset)
                    release = self._releases.pop(offset, None)
                    self._held_bytes -= len(held)
                    # Room was made: producers waiting to hold a block may go on.
                    self._cond.notify_all()
                view = memoryview(held)
        except BaseException as exc:
            # The turn is not passed on; every producer learns why.
            self.stop(exc if isinstance(exc, Exception) else None)
            raise

    def _check(self, offset: int, n: int) -> None:
        if type(offset) is not int or offset < 0:
            raise OutOfOrder(f"block offset {offset!r} is not a non-negative whole number")
        end = offset + n
        if offset < self._next:
            raise OutOfOrder(
                f"block {offset}-{end} overlaps bytes already delivered (everything before {self._next})",
                hint="each byte must be sent once",
            )
        i = self._range_index
        ranges = self._ranges
        # (the current range first: nearly every block lies in it)
        if i >= len(ranges) or not (
            (ranges[i].start <= offset and end <= ranges[i].end)
            or any(r.start <= offset and end <= r.end for r in ranges[i + 1 :])
        ):
            raise OutOfOrder(
                f"block {offset}-{end} is outside the expected bytes {RangeSet(tuple(self._ranges[i:])) or 'none'}",
                hint="blocks must lie within the object's size and the ranges still to send",
            )
        k = bisect.bisect_left(self._offsets, offset)
        if k < len(self._offsets) and self._offsets[k] < end:
            raise OutOfOrder(f"block {offset}-{end} overlaps a block already received at {self._offsets[k]}")
        if k > 0:
            prev = self._offsets[k - 1]
            if prev + len(self._held[prev]) > offset:
                raise OutOfOrder(f"block {offset}-{end} overlaps a block already received at {prev}")

    def _hold(self, offset: int, data: bytes | memoryview) -> None:
        bisect.insort(self._offsets, offset)
        self._held[offset] = data
        self._held_bytes += len(data)
        self.peak_held = max(self.peak_held, self._held_bytes)

    def _advance(self, n: int) -> None:
        self._next += n
        self._delivered += n
        self._moved_at = time.monotonic()
        while self._range_index < len(self._ranges) and self._next >= self._ranges[self._range_index].end:
            self._range_index += 1
            if self._range_index < len(self._ranges):
                self._next = self._ranges[self._range_index].start

    def _raise_if_stopped(self) -> None:
        if self._stopped is not None:
            raise self._stopped

    def _deadline(self) -> float | None:
        return None if self._stall_timeout is None else time.monotonic() + self._stall_timeout

    def _wait(self, deadline: float | None, offset: int) -> float | None:
        before = (self._next, self._held_bytes)
        # a later block waiting for room: the window may have to grow (see the module)
        growing = offset != self._next and self._limit < self._capacity
        timeout = GROW_AFTER if growing else None
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WindowStalled(
                    f"waited {self._stall_timeout:g} s for the block at offset {self._next} while holding "
                    f"{self._held_bytes} bytes of later blocks (this one at {offset})",
                    hint="the sender must send each connection's blocks in ascending order; check it",
                )
            timeout = left if timeout is None else min(timeout, left)
        self._cond.wait(timeout)
        if (
            growing
            and not self._busy
            and self._limit < self._capacity
            and time.monotonic() - self._moved_at >= GROW_AFTER
        ):
            self._limit = min(self._capacity, 2 * self._limit)
            self._moved_at = time.monotonic()  # the next doubling waits its own while
            self._cond.notify_all()
        if deadline is None:
            return None
        # Progress restarts the clock: only a window that stands still stalls.
        return self._deadline() if (self._next, self._held_bytes) != before else deadline


__all__ = ["Handover", "OutOfOrder", "ReorderWindow", "Sink", "Stopped", "WindowStalled"]
