"""Writes and read-backs that bypass the page cache (``O_DIRECT``).

A buffered write copies every byte into a fresh page-cache page, and on a
virtual machine that hands freed memory back to its host each fresh page
costs a host page fault: measured on a 2-core VM, 2 GiB of 4 MiB ``pwrite``\\ s
plus ``fdatasync`` took 8.3-9.0 s buffered and 1.4-3.0 s with ``O_DIRECT``.

``O_DIRECT`` needs the file offset, the length and the memory address all
aligned to the device's logical block size.  :class:`DirectFile` keeps a
second descriptor of the partial file opened with ``O_DIRECT`` and sends a
request through it only when all three are aligned to :attr:`alignment`,
which is at least the page size.  Everything else (a ``bytes`` object, the
object's last block, a block at an odd offset) takes the buffered descriptor.

Mixing the two on one file is safe here because no two requests touch the
same page: the writer never writes a byte twice, and a direct request covers
whole pages, so a buffered request that does not overlap it in bytes does not
share a page with it either.  ``fdatasync`` on either descriptor still makes
the file's size, its newly allocated blocks and the buffered part durable, and
flushes the device's volatile cache, which ``O_DIRECT`` alone does not.
"""

from __future__ import annotations

import errno
import mmap
import os

from transfercore.errors import StorageError, from_oserror

MODES = ("auto", "on", "off")

# Larger than any logical block size seen on local disks, and page-aligned so
# that direct and buffered requests never share a page (see above).
_MAX_ALIGNMENT = 1 << 20

#: Smaller requests stay buffered.  A direct request waits for the device, so
#: small ones are latency-bound: measured with 4 threads writing 512 MiB, 64 KiB
#: requests took 1.2-1.3 s direct against 0.6 s buffered, 256 KiB ones
#: 0.6-0.7 s against 0.5 s, and 1 MiB ones 0.45 s either way at half the CPU.
MIN_DIRECT = 1 << 20


def _power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def alignment_of(fd: int) -> int:
    """A conservative ``O_DIRECT`` alignment for the file open as ``fd``.

    The block size the file system reports is at least its logical block size
    on the file systems that support ``O_DIRECT``; the page size is a floor.
    """
    align = mmap.PAGESIZE
    candidates: tuple[int, ...]
    try:
        candidates = (os.fstat(fd).st_blksize, os.fstatvfs(fd).f_bsize)
    except OSError:
        candidates = ()
    for value in candidates:
        if _power_of_two(value) and align < value <= _MAX_ALIGNMENT:
            align = value
    return align


def address_of(view: memoryview) -> int | None:
    """The memory address of ``view``'s first byte, or None if it cannot be known.

    Only a writable buffer exposes its address to ``ctypes``; a ``bytes``
    object is read-only, and its data is not aligned anyway.
    """
    if view.readonly or not view.nbytes:
        return None
    import ctypes  # here: most writers never use O_DIRECT

    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(view))
    except (TypeError, ValueError, BufferError):
        return None


def open_direct(path: str, mode: str) -> int | None:
    """Open ``path`` (an existing file) a second time with ``O_DIRECT``.

    With ``mode="auto"`` a file system that refuses ``O_DIRECT`` (EINVAL, as
    some FUSE file systems and older tmpfs do) gives None, and the writer
    stays buffered; with ``mode="on"`` it is an error.  ``mode="off"`` gives None.
    """
    if mode == "off":
        return None
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        if mode == "on":
            raise StorageError(
                "direct=on was asked for, but this platform has no O_DIRECT",
                hint="use direct=auto or direct=off",
            )
        return None
    try:
        return os.open(path, os.O_RDWR | os.O_CLOEXEC | flag)
    except OSError as exc:
        if mode == "on":
            raise StorageError(
                f"direct=on was asked for, but the file system refuses O_DIRECT on {path}: {exc.strerror}",
                errno=exc.errno,
                hint="use direct=auto (falls back to buffered writes) or direct=off",
            ) from None
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
            return None
        raise from_oserror(exc, f"cannot open {path} a second time for direct writes") from exc


class DirectFile:
    """The ``O_DIRECT`` descriptor of one partial file and its alignment rule."""

    def __init__(self, fd: int, alignment: int, *, strict: bool) -> None:
        self.fd = fd
        self.alignment = alignment
        # With direct=on a refused request is an error; with auto it turns
        # direct requests off for the rest of this file.
        self.strict = strict
        self.usable = True

    def aligned_length(self, offset: int, view: memoryview) -> int:
        """How many leading bytes of ``view`` at ``offset`` may go through
        the direct descriptor (a multiple of the alignment; 0 for none, also
        for a request shorter than :data:`MIN_DIRECT`)."""
        if not self.usable:
            return 0
        mask = self.alignment - 1
        if offset & mask or view.nbytes < max(MIN_DIRECT, self.alignment):
            return 0
        address = address_of(view)
        if address is None or address & mask:
            return 0
        return view.nbytes & ~mask

    def refused(self, exc: OSError, what: str) -> None:
        """Handle an EINVAL from a direct request: raise with direct=on, else stop using it."""
        if self.strict:
            raise StorageError(
                f"the file system refused an O_DIRECT request for {what}: {exc.strerror}",
                errno=exc.errno,
                hint="use direct=auto (falls back to buffered writes) or direct=off",
            ) from exc
        self.usable = False

    def close(self) -> None:
        os.close(self.fd)
