"""Small durable file-system steps shared by the writer, the sidecar and the driver."""

from __future__ import annotations

import os

from transfercore.errors import from_oserror


def fsync_dir(directory: str) -> None:
    """Make the entries of ``directory`` (created, renamed, removed names) durable."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise from_oserror(exc, f"cannot open directory {directory} to sync it") from exc
    try:
        os.fsync(fd)
    except OSError as exc:
        raise from_oserror(exc, f"cannot sync directory {directory}") from exc
    finally:
        os.close(fd)


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
