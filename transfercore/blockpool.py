"""Buffers a data connection gives away with its bytes, and gets back once the storage took them.

An upload into storage that takes its bytes in order (HPSS PIO) holds blocks
twice: the reorder window keeps those that came ahead of their turn, and the
driver stages the ones in turn until its mover asks for them.  When the
connection lends its one receive buffer, both must copy every block they
keep (a third and fourth pass over each byte besides the kernel's, and each
copy in freshly allocated memory: a page fault per 4 KiB).  With a pool the
connection receives each block into a buffer of its own and gives it away
(:meth:`ReorderWindow.put <transfercore.reorder.ReorderWindow.put>` with a
release, :meth:`Writer.write_owned <transfercore.contract.Writer.write_owned>`);
whoever reads it last calls the release, and the buffer serves a later block.

The pool keeps at most ``keep`` bytes of free buffers, so its memory is what
the window and the staging queue bound, plus that.  A release that never
comes (a transfer that failed with blocks waiting) costs nothing but the
reuse: the buffer is freed with its last reference.  A release must come
only once nothing reads the buffer any more; :class:`Release` makes a
second call harmless.
"""

from __future__ import annotations

import mmap
import threading

#: The smallest buffer handed out; smaller blocks are cheaper copied than given away.
MIN_BLOCK = 64 * 1024


def aligned_buffer(size: int) -> memoryview:
    """A writable, zero-filled, page-aligned buffer of ``size`` bytes (at least 1).

    An anonymous mapping: page-aligned, so the kernel's copies in and out
    are too (why that matters: :mod:`transfercore.engine.buffers`), and
    released when the last view of it is garbage-collected.  Private: a
    shared anonymous mapping is a file of the kernel's shmem, slower to
    fault in and to unmap.
    """
    return memoryview(mmap.mmap(-1, max(1, size), flags=mmap.MAP_PRIVATE))


class Release:
    """Gives one buffer back to its pool, once: the first call counts, later ones do nothing."""

    __slots__ = ("_buf", "_pool")

    def __init__(self, pool: BlockPool, buf: memoryview) -> None:
        self._pool: BlockPool | None = pool
        self._buf = buf

    def __call__(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool._back(self._buf)


class BlockPool:
    """Page-aligned buffers in sizes of powers of two from :data:`MIN_BLOCK`, reused across blocks."""

    def __init__(self, keep: int) -> None:
        if keep < 0:
            raise ValueError("keep must be at least 0")
        self.keep = keep
        self._lock = threading.Lock()
        self._free: dict[int, list[memoryview]] = {}
        self._free_bytes = 0
        #: Buffers made (not reused), for tests and figures.
        self.made = 0

    @staticmethod
    def size_for(n: int) -> int:
        """The size of buffer :meth:`take` gives for ``n`` bytes."""
        size = MIN_BLOCK
        while size < n:
            size *= 2
        return size

    def take(self, n: int) -> tuple[memoryview, Release]:
        """A buffer of at least ``n`` bytes, and what gives it back."""
        size = self.size_for(n)
        with self._lock:
            free = self._free.get(size)
            if free:
                self._free_bytes -= size
                buf = free.pop()
                return buf, Release(self, buf)
            self.made += 1
        buf = aligned_buffer(size)
        return buf, Release(self, buf)

    @property
    def free_bytes(self) -> int:
        with self._lock:
            return self._free_bytes

    def _back(self, buf: memoryview) -> None:
        size = len(buf)
        with self._lock:
            if self._free_bytes + size <= self.keep:
                self._free.setdefault(size, []).append(buf)
                self._free_bytes += size


__all__ = ["MIN_BLOCK", "BlockPool", "Release", "aligned_buffer"]
