"""Giving back the memory of a finished transfer, so a long session keeps the footprint of one file.

Drivers may keep large buffers in reference cycles (a C callback handle
pointing back at its writer, a thread bound to it): the cyclic collector
frees them only when it next runs, and a tree of small files piled up
850 MiB of HPSS PIO buffers in the server before it did.  After each
few transfers the server collects its garbage; :func:`~transfercore.collector.freeze_startup`
first moves the objects of start-up (imports, the driver) out of the
collector's sight, so a collection costs in proportion to what the sessions
made, not to the whole program.  That is still about 0.2 ms of the event
loop with four sessions open, which a collection after every small file
paid: one every :data:`COLLECT_EVERY` transfers bounds the memory waiting
for it to that many transfers' buffers at a fraction of the cost.
"""

from __future__ import annotations

import gc
import time

#: Transfers ended between two collections (HPSS: up to 8 x 8 MiB of PIO buffers waiting).
COLLECT_EVERY = 8
#: ... and seconds between two collections: a tree of small files ends hundreds
#: of transfers a second, and a collection every 8 was still 5 % of the server's
#: CPU in a 1,000-file ``-cc 4`` tree (0.27 ms each, ``gc.callbacks``).  A
#: transfer with large buffers lasts longer than this, so the bound above holds
#: for them; small ones' cycles wait for the first transfer to end after it.
COLLECT_AFTER = 0.05

_ended = 0
_last = 0.0


def release_garbage() -> None:
    """Count a finished transfer; collect the cycles left once
    :data:`COLLECT_EVERY` have ended and :data:`COLLECT_AFTER` seconds have
    passed since the last collection."""
    global _ended, _last
    _ended += 1
    if _ended >= COLLECT_EVERY:
        now = time.monotonic()
        if now - _last >= COLLECT_AFTER:
            _ended = 0
            _last = now
            gc.collect()
