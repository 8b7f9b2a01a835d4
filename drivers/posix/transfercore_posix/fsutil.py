"""Small file-system steps shared by the writer, the reader, the sidecar and the driver
(``fsync_dir`` is the core's, in :mod:`transfercore.driverkit`)."""

from __future__ import annotations

import errno
import os

from transfercore.errors import from_oserror


def remove_quietly(path: str) -> bool:
    """Remove ``path`` if it exists; return whether something was removed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise from_oserror(exc, f"cannot remove {path}") from exc
    return True


def pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    """``pwrite`` until every byte is written; a short write is retried, not ignored."""
    done = 0
    total = len(data)
    while done < total:
        n = os.pwrite(fd, data[done:], offset + done)
        if n <= 0:
            raise OSError(5, "pwrite wrote nothing")  # EIO: never loop forever
        done += n


def preadv_exact(fd: int, view: memoryview, offset: int, what: str) -> int:
    """Read into all of ``view`` from ``offset``; return the bytes read, fewer only at end of file."""
    done = 0
    total = view.nbytes
    while done < total:
        try:
            n = os.preadv(fd, [view[done:]], offset + done)
        except OSError as exc:
            raise from_oserror(exc, f"{what} at {offset + done}") from exc
        if n == 0:
            break
        done += n
    return done


def drop_cached(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to drop the clean page-cache pages of ``[offset, offset + length)``.

    Advice only: dirty pages stay, and a later read of the range goes to the
    device, which is slower, not wrong.  On a VM that returns free memory to
    its host, filling fresh page-cache pages costs a host page fault each;
    recycling a bounded set of pages instead took a 2 GiB copy from 7-9 s to
    under 3 s here.
    """
    try:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass


def pread_cached(fd: int, view: memoryview, offset: int, what: str) -> int | None:
    """Read into ``view`` only what the page cache already holds, without waiting
    for the device (``RWF_NOWAIT``): the bytes read, possibly 0, or ``None`` when
    the kernel or file system cannot tell cached pages from the others."""
    flag = getattr(os, "RWF_NOWAIT", None)
    if flag is None:
        return None
    try:
        return os.preadv(fd, [view], offset, flag)
    except BlockingIOError:
        return 0
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            return None
        raise from_oserror(exc, f"{what} at {offset}") from exc


#: File systems where ``syncfs(2)`` makes every file's data, attributes and
#: names durable on the local device (statfs f_type).  Elsewhere (FUSE,
#: network file systems) syncfs may flush only the local page cache, so the
#: batch syncs each file instead.
SYNCFS_DURABLE = {0xEF53: "ext4", 0x58465342: "xfs", 0x9123683E: "btrfs"}


def _libc() -> object:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def fs_type(path: str) -> int | None:
    """The ``f_type`` of the file system holding ``path``, or None if unknown."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return None
    buf = ctypes.create_string_buffer(256)  # larger than struct statfs; f_type comes first
    if _libc().statfs(os.fsencode(path), buf) != 0:  # type: ignore[attr-defined]
        return None
    return int.from_bytes(buf.raw[: ctypes.sizeof(ctypes.c_long)], sys.byteorder)


def syncfs(fd: int, what: str) -> None:
    """``syncfs(2)``: everything of the file system holding ``fd`` on media.
    Linux 5.8 and later report writeback errors of any file in it."""
    import ctypes

    if _libc().syncfs(fd) != 0:  # type: ignore[attr-defined]
        err = ctypes.get_errno()
        raise from_oserror(OSError(err, os.strerror(err)), what)


#: fallocate(2) modes.
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02


def punch_hole(fd: int, offset: int, length: int, what: str) -> None:
    """Free the blocks of ``offset``..``offset+length`` (they read back as zeros; the size stays)."""
    import ctypes

    if length <= 0:
        return
    fallocate = _libc().fallocate  # type: ignore[attr-defined]
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    if fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) != 0:
        err = ctypes.get_errno()
        raise from_oserror(OSError(err, os.strerror(err)), what)
