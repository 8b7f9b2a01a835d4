"""REST as the Globus server delivers it, in the driver's terms; marker deltas.

The server answers ``REST`` itself and gives the DSI the ranges the client
still has to send (the complement of the client's marker), ``[0, MAX)`` when
there was no ``REST``.  The driver wants the opposite: the marker the client
holds.  Pure functions, tested without the server.
"""

from __future__ import annotations

from collections.abc import Iterable

from transfercore.errors import RestartRejected
from transfercore.ranges import RangeSet

#: ``GLOBUS_RANGE_LIST_MAX``: a length of -1 means "to the end".
TO_END = -1


def held_marker(to_receive: Iterable[tuple[int, int]], size: int | None) -> RangeSet | None:
    """The marker the client holds, from the ranges the server says it will send.

    ``None`` for a fresh upload.  A restart of an upload of unknown size
    (no ``ALLO``) cannot be checked against anything and is refused.
    """
    spans = list(to_receive)
    if not spans or spans == [(0, TO_END)]:
        return None
    if size is None:
        raise RestartRejected(
            "cannot resume an upload of unknown size: the client sent REST without ALLO",
            hint="send ALLO with the file's size before REST and STOR",
        )
    missing = []
    for offset, length in spans:
        if offset < 0 or (length < 0 and length != TO_END):
            raise RestartRejected(f"the server passed an impossible restart range {offset}+{length}")
        end = size if length == TO_END else offset + length
        missing.append((min(offset, size), min(max(end, offset), size)))
    held = RangeSet.of(*missing).complement(size)
    return held or None


def held_unsized(to_receive: Iterable[tuple[int, int]]) -> RangeSet | None:
    """The marker the client holds for an upload of unknown size (no ``ALLO``, spooled).

    The server will receive one open-ended range (from the end of what the
    client holds) and the holes before it; ``None`` for a fresh upload.
    """
    spans = list(to_receive)
    if not spans or spans == [(0, TO_END)]:
        return None
    if any(offset < 0 or (length < 0 and length != TO_END) for offset, length in spans):
        raise RestartRejected(f"the server passed an impossible restart range list {spans}")
    open_ended = [offset for offset, length in spans if length == TO_END]
    if len(open_ended) != 1:
        raise RestartRejected(
            f"cannot resume an upload of unknown size from the restart ranges {spans}",
            hint="send the file again from its start, or send ALLO with its size",
        )
    end = open_ended[0]
    holes = [(offset, min(offset + length, end)) for offset, length in spans if length != TO_END and offset < end]
    held = RangeSet.of(*holes).complement(end) if end else RangeSet()
    return held or None
