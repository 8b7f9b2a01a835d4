"""Cutting an object into blocks.

Blocks are handed to the streams in ascending offset order.  Where a stage
must see blocks in order (a destination that requires ordered writes, a
source that must be read in order, the running source checksum), the pump
puts them through a :class:`transfercore.reorder.ReorderWindow` that holds
nothing: block *k* goes through only after block *k-1*.  Since every stream
holds one block at a time and blocks are handed out in order, at most
``streams`` blocks wait at a window: memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from ..ranges import RangeSet
from ..reorder import Stopped


@attrs.frozen
class Block:
    """One unit of work: ``[start, end)`` of the source."""

    #: Position among all blocks (the order of the checksum and of reads).
    index: int
    start: int
    end: int
    #: True to write it to the destination; False when the destination
    #: already holds it durably and it is read only for the checksum.
    write: bool
    #: Position among the blocks to write (the order of ordered writes).
    write_index: int

    @property
    def length(self) -> int:
        return self.end - self.start


def _cut(start: int, end: int, block_size: int) -> Iterator[tuple[int, int]]:
    # Align cuts to multiples of the block size so that a resumed run cuts
    # the same boundaries as the first.
    pos = start
    while pos < end:
        nxt = min(end, (pos // block_size + 1) * block_size)
        yield pos, nxt
        pos = nxt


def plan_blocks(size: int, have: RangeSet, block_size: int, *, include_have: bool) -> list[Block]:
    """The blocks of ``[0, size)``, ascending.

    Bytes outside ``have`` are written; bytes inside ``have`` (the resumed
    marker) are listed only when ``include_have`` (to be read for the checksum).
    """
    if block_size < 1:
        raise ValueError("block_size must be at least 1")
    have = have.clip(size)
    missing = have.complement(size)
    pieces: list[tuple[int, int, bool]] = [(r.start, r.end, True) for r in missing]
    if include_have:
        pieces += [(r.start, r.end, False) for r in have]
    pieces.sort()
    blocks: list[Block] = []
    write_index = 0
    for start, end, write in pieces:
        for a, b in _cut(start, end, block_size):
            blocks.append(Block(len(blocks), a, b, write, write_index if write else -1))
            if write:
                write_index += 1
    return blocks


__all__ = ["Block", "Stopped", "plan_blocks"]
