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

# One maker of such buffers for the engine and the data connections' block pool (which
# must not import the engine).
from ..blockpool import aligned_buffer

__all__ = ["aligned_buffer"]
