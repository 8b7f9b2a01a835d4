"""How one upload is carried out, and whether it ended complete: decisions without I/O.

:func:`plan_store` turns a ``STOR``/``ESTO`` and the destination's declared
:class:`~transfercore.capabilities.Capabilities` into a :class:`StorePlan`:
where the bytes go (a partial name when the storage cannot publish
atomically, so an unfinished upload never sits under its final name),
whether they must be put in order through a reorder window, how many writes
may run at once, how large a piece is read into a buffer.  Restart
preconditions are checked here and refused with their reply code.

:class:`UploadTracker` gathers what the data connections of one MODE E
upload delivered and their EOF/EOD blocks; :meth:`UploadTracker.check`
decides whether the announced bytes all arrived.
"""

from __future__ import annotations

import threading

import attrs

from ..capabilities import Capabilities
from ..partialnames import is_partial_name, partial_path
from ..ranges import ByteRange, RangeSet
from .actions import Store
from .errors import ReplyError
from .modee import EndOfData, EndOfFile, EndTracker, Event

#: The empty set, made once (an upload asks for the bytes it keeps several times).
NOTHING = RangeSet()
#: Bytes a MODE E upload into an ordered destination may hold out of order.
DEFAULT_REORDER_WINDOW = 32 * 1024 * 1024
#: Largest piece of a block read into one buffer (a bigger block arrives in pieces).
MAX_PIECE = 4 * 1024 * 1024
#: The name an upload is written under until it is complete, beside its final name.
partial_name = partial_path


@attrs.frozen
class StorePlan:
    #: The driver path the object is published under.
    path: str
    #: The driver path the writer writes; differs from :attr:`path` when the
    #: destination cannot publish atomically, and is renamed once complete.
    target: str
    #: The size announced by ALLO (of the bytes this upload sends: the slice
    #: of an ``ESTO``); ``None``: unknown, the upload is spooled.
    size: int | None
    #: The ranges the client says we hold (REST), in data-channel offsets.
    restart: RangeSet | None
    #: Blocks must reach the writer in ascending order (through a reorder window).
    ordered: bool
    #: Writes that may run at once (unordered destinations).
    writers: int
    #: Bytes the reorder window may hold out of order.
    window: int
    #: Largest number of block bytes read into one buffer.
    piece: int
    #: ``ESTO A <offset>``: where the data land in the object (data offset 0 goes here).
    offset: int = 0
    #: ``ESTO``: the size of the object updated in place (0 when there is none
    #: yet); ``None`` for a ``STOR``, which replaces the object.
    base: int | None = None

    @property
    def renames(self) -> bool:
        return self.target != self.path

    @property
    def updates(self) -> bool:
        return self.base is not None

    def object_size(self, length: int) -> int:
        """The size of the object written when the upload carries ``length`` bytes."""
        end = self.offset + length
        return max(self.base, end) if self.base is not None else end

    def slice(self, length: int) -> RangeSet:
        """Where the ``length`` uploaded bytes land in the object."""
        return RangeSet.span(self.offset, self.offset + length)

    def kept(self, length: int) -> tuple[RangeSet, RangeSet]:
        """The object's bytes the upload does not replace: before the slice, after it.

        They are copied from the object as it is (zeros past its end), so the
        update is written whole under a partial name and published at once:
        the object is never seen half updated, and a cut upload leaves it as
        it was.
        """
        if self.base is None:
            return NOTHING, NOTHING
        end = self.offset + length
        return RangeSet.span(0, self.offset), RangeSet.span(end, max(self.base, end))

    def resume(self) -> RangeSet | None:
        """The REST marker in object offsets, for the driver.

        An update writes the bytes before its slice first, so a durable part of
        the slice implies them.
        """
        if self.restart is None:
            return None
        moved = shift(self.restart, self.offset)
        return moved | RangeSet.span(0, self.offset) if self.updates and self.offset else moved

    def marker(self, durable: RangeSet, length: int) -> RangeSet:
        """A durable set of the object in data-channel offsets (what 111 markers name).

        As the Globus server does, markers of an ``ESTO`` are in the offsets
        the data arrived with: the client adds the offset it asked for.
        """
        return shift(durable & self.slice(length), -self.offset)


def shift(ranges: RangeSet, delta: int) -> RangeSet:
    """``ranges`` moved by ``delta`` bytes."""
    if not delta:
        return ranges
    return RangeSet(tuple(ByteRange(r.start + delta, r.end + delta) for r in ranges))


def plan_store(
    act: Store,
    caps: Capabilities,
    path: str,
    *,
    window: int = DEFAULT_REORDER_WINDOW,
    durable_spool: bool = False,
    existing: int | None = None,
) -> StorePlan:
    """The plan for ``act`` into a destination declaring ``caps``; ``path`` is the driver path.

    ``durable_spool``: uploads without ALLO go to a restartable spool, so they
    may be resumed with REST too.  ``existing``: the size of the object now
    at ``path`` (``None``: there is none), which an ``ESTO`` updates.
    """
    restart = act.restart or None
    if act.alloc is None and restart is not None and not durable_spool:
        raise ReplyError(504, "A restart needs the size: send ALLO <size> before REST and STOR.")
    if act.mode == "S" and restart is not None and restart != restart.prefix():
        raise ReplyError(501, "In MODE S only a prefix restart (REST <offset>) is possible.")
    if restart is not None and act.alloc is not None and restart.end() > act.alloc:
        raise ReplyError(553, f"Restart marker {restart} goes past the announced size {act.alloc}.")
    base = (existing or 0) if act.update else None
    if base is not None and caps.ordered_writes and act.shift > base:
        # Writing in order only, the bytes before the offset would have to be
        # invented (zeros) into storage that keeps them; refused before any byte lands.
        raise ReplyError(
            553,
            f"Cannot store at offset {act.shift}: the object holds {base} bytes and this storage "
            "writes in order only, so an update may start at most at its end.",
            hint=f"use ESTO A <offset> with an offset of at most {base}, or store the whole object",
        )
    piece = max(caps.min_block_size, min(MAX_PIECE, caps.preferred_block_size))
    return StorePlan(
        path=path,
        target=path if caps.atomic_publish else partial_name(path),
        size=act.alloc,
        restart=restart,
        ordered=caps.ordered_writes and act.alloc is not None,
        writers=1 if caps.ordered_writes else caps.max_writers,
        # At least a few pieces: the block that is next must never wait for room.
        window=max(window, 4 * piece),
        piece=piece,
        offset=act.shift,
        base=base,
    )


def missing_after(plan: StorePlan, resumed: RangeSet, received: RangeSet) -> RangeSet:
    """The announced bytes (in object offsets) neither resumed nor received."""
    assert plan.size is not None
    return plan.slice(plan.size) - (resumed | received)


def check_complete(plan: StorePlan, resumed: RangeSet, received: RangeSet) -> None:
    """:class:`ReplyError` 451 when announced bytes are missing; the durable part stays for a restart."""
    assert plan.size is not None
    missing = shift(missing_after(plan, resumed, received), -plan.offset)
    if missing:
        raise ReplyError(
            451,
            f"Upload incomplete: {missing.total()} of {plan.size} announced bytes missing "
            f"(first missing range {next(iter(missing))}); the durable part is kept for a restart.",
        )


def check_spooled(received: RangeSet) -> int:
    """The size of a spooled upload (data offsets from 0), or :class:`ReplyError` 451 when it has holes."""
    size = received.end()
    holes = RangeSet.span(0, size) - received
    if holes:
        raise ReplyError(
            451,
            f"Upload has holes: no data arrived for {holes} (received {received}); nothing was stored.",
        )
    return size


class UploadTracker:
    """The bytes and the EOF/EOD blocks the connections of one MODE E upload delivered.

    Fed from several connection threads; it only counts, under a lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ends = EndTracker()
        self._spans: list[ByteRange] = []

    def data(self, offset: int, length: int) -> None:
        with self._lock:
            self._spans.append(ByteRange(offset, offset + length))

    def end(self, event: Event) -> None:
        """An EOF or EOD block (:attr:`complete` once every announced EOD arrived)."""
        assert isinstance(event, (EndOfFile, EndOfData))
        with self._lock:
            self._ends.feed(event)

    @property
    def complete(self) -> bool:
        with self._lock:
            return self._ends.complete

    def state(self) -> str:
        with self._lock:
            t = self._ends
            eof = f"EOF announced {t.expected} EODs" if t.expected is not None else "no EOF block arrived"
            return f"{t.seen} EOD(s) received and {eof}"

    def received(self) -> RangeSet:
        with self._lock:
            merged = RangeSet(tuple(self._spans))
            self._spans = list(merged.ranges)
            return merged


__all__ = [
    "StorePlan",
    "UploadTracker",
    "check_complete",
    "check_spooled",
    "is_partial_name",
    "partial_name",
    "plan_store",
    "shift",
]
