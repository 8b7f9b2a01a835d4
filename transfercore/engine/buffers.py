"""Page-aligned buffers for the streams and the read-back.

A ``bytearray`` of a few MiB comes from ``malloc`` and starts 16 bytes past a
page boundary.  The kernel copies file data into user memory with string
instructions that, on some CPUs (measured on AMD EPYC), run several times
slower into a destination that is not cache-line aligned: ``preadv`` into a
``bytearray`` cost 3-4x the CPU of ``preadv`` into the same size of anonymous
``mmap`` memory.  An anonymous mapping is page-aligned, so every copy in and
out of it is aligned.
"""

from __future__ import annotations

import mmap


def aligned_buffer(size: int) -> memoryview:
    """A writable, zero-filled, page-aligned buffer of ``size`` bytes (at least 1).

    The mapping is released when the last view of it is garbage-collected.
    Private: a shared anonymous mapping is a file of the kernel's shmem,
    slower to fault in and to unmap (:mod:`transfercore.blockpool`).
    """
    return memoryview(mmap.mmap(-1, max(1, size), flags=mmap.MAP_PRIVATE))
