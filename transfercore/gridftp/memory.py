"""Giving back the memory of a finished transfer, so a long session keeps the footprint of one file.

Drivers may keep large buffers in reference cycles (a C callback handle
pointing back at its writer, a thread bound to it): the cyclic collector
frees them only when it next runs, and a tree of small files piled up
850 MiB of HPSS PIO buffers in the server before it did.  After each
transfer the server collects its garbage at once; :func:`freeze_startup`
first moves the objects of start-up (imports, the driver) out of the
collector's sight, so a collection costs in proportion to what the sessions
made (well under a millisecond), not to the whole program.
"""

from __future__ import annotations

import gc


def freeze_startup() -> None:
    """Exclude every object alive now from later collections (call once, after start-up)."""
    gc.collect()
    gc.freeze()


def release_garbage() -> None:
    """Collect the unreachable cycles a transfer left."""
    gc.collect()
