"""Helpers shared by the POSIX driver's tests."""

import errno
import os


def payload(size: int, seed: int = 1) -> bytes:
    """Deterministic, position-dependent bytes: a misplaced block never matches."""
    return bytes((i * 31 + seed * 7 + (i >> 8)) & 0xFF for i in range(size))


def resident_pages(path: str) -> int:
    """How many of the file's pages are in the page cache (mincore on a shared map)."""
    import ctypes
    import mmap

    size = os.path.getsize(path)
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert addr not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
        try:
            vec = ctypes.create_string_buffer(pages)
            assert libc.mincore(addr, size, vec) == 0, os.strerror(ctypes.get_errno())
            return sum(b & 1 for b in vec.raw)
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)


def refuse_o_direct(monkeypatch) -> None:
    """Make the direct module's opens fail with EINVAL for O_DIRECT, as some file systems do."""
    from transfercore_posix import direct

    real = os.open

    def refusing(path, flags, *args, **kwargs):
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(direct.os, "open", refusing)
