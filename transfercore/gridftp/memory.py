"""Giving back the memory of a finished transfer, so a long session keeps the footprint of one file.

Drivers may keep large buffers in reference cycles (a C callback handle
pointing back at its writer, a thread bound to it): the cyclic collector
frees them only when it next runs, and a tree of small files piled up
850 MiB of HPSS PIO buffers in the server before it did.  After each
few transfers the server collects its garbage; :func:`freeze_startup`
first moves the objects of start-up (imports, the driver) out of the
collector's sight, so a collection costs in proportion to what the sessions
made, not to the whole program.  That is still about 0.2 ms of the event
loop with four sessions open, which a collection after every small file
paid: one every :data:`COLLECT_EVERY` transfers bounds the memory waiting
for it to that many transfers' buffers at a fraction of the cost.
"""

from __future__ import annotations

import gc


def freeze_startup() -> None:
    """Exclude every object alive now from later collections (call once, after start-up)."""
    gc.collect()
    gc.freeze()


#: Transfers ended between two collections (HPSS: up to 8 x 8 MiB of PIO buffers waiting).
COLLECT_EVERY = 8

_ended = 0


def release_garbage() -> None:
    """Count a finished transfer; collect the cycles left once :data:`COLLECT_EVERY` have ended."""
    global _ended
    _ended += 1
    if _ended >= COLLECT_EVERY:
        _ended = 0
        gc.collect()
