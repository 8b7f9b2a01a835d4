"""The FUSE face of a :class:`~.model.Volume` (libfuse3 through mfusepy).

All semantics live in the model; this module only translates calls.  One lock
serializes them, because the model is a plain in-memory tree.
"""

from __future__ import annotations

import errno
import functools
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import mfusepy

from .model import Inode, Volume

_F = TypeVar("_F", bound=Callable[..., Any])


def _locked(method: _F) -> _F:
    @functools.wraps(method)
    def wrapper(self: PowerLossOperations, *args: Any) -> Any:
        with self._lock:
            return method(self, *args)

    return wrapper  # type: ignore[return-value]


class PowerLossOperations(mfusepy.Operations):  # type: ignore[misc]
    """Path-based operations; open files are tracked by handle so that a
    rename or unlink of an open file keeps writing to the same inode."""

    use_ns = True

    def __init__(self, volume: Volume, *, sync_on_unmount: bool = True) -> None:
        self._volume = volume
        self._lock = threading.Lock()
        self._handles: dict[int, Inode] = {}
        self._next_fh = 1
        self._sync_on_unmount = sync_on_unmount

    # --- helpers -----------------------------------------------------------------

    def _node(self, path: str | None, fh: int | None) -> Inode:
        if fh:
            node = self._handles.get(fh)
            if node is not None:
                return node
        if path is None:
            raise OSError(errno.EBADF, "no such handle")
        return self._volume.resolve(path)

    def _open_handle(self, node: Inode) -> int:
        fh = self._next_fh
        self._next_fh += 1
        self._handles[fh] = node
        self._volume.opened(node)
        return fh

    def _close_handle(self, fh: int) -> None:
        node = self._handles.pop(fh, None)
        if node is not None:
            self._volume.released(node)

    # --- attributes -----------------------------------------------------------------

    @_locked
    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        node = self._node(path, fh)
        size = self._volume.size(node)
        return {
            "st_mode": node.mode,
            "st_ino": node.ino,
            "st_nlink": max(node.nlink, 1 if not node.is_dir else 2),
            "st_uid": node.uid,
            "st_gid": node.gid,
            "st_size": size,
            "st_blocks": (size + 511) // 512,
            "st_blksize": 4096,
            "st_atime": node.mtime_ns,
            "st_mtime": node.mtime_ns,
            "st_ctime": node.ctime_ns,
        }

    @_locked
    def chmod(self, path: str, mode: int) -> int:
        self._volume.chmod(self._volume.resolve(path), mode)
        return 0

    @_locked
    def chown(self, path: str, uid: int, gid: int) -> int:
        self._volume.chown(self._volume.resolve(path), uid, gid)
        return 0

    @_locked
    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        self._volume.utimens(self._volume.resolve(path), None if times is None else times[1])
        return 0

    @_locked
    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        self._volume.truncate(self._node(path, fh), length)
        return 0

    @_locked
    def statfs(self, path: str) -> dict[str, int]:
        return {
            "f_bsize": 4096,
            "f_frsize": 4096,
            "f_blocks": 1 << 30,
            "f_bfree": 1 << 29,
            "f_bavail": 1 << 29,
            "f_files": 1 << 20,
            "f_ffree": 1 << 19,
            "f_favail": 1 << 19,
            "f_namemax": 255,
        }

    # --- namespace -------------------------------------------------------------------

    @_locked
    def create(self, path: str, mode: int, flags: int = 0) -> int:
        uid, gid, _pid = mfusepy.fuse_get_context()
        return self._open_handle(self._volume.create(path, mode, uid, gid))

    @_locked
    def symlink(self, target: str, source: str) -> int:
        # fusepy's names: ``target`` is the new link, ``source`` what it points to.
        uid, gid, _pid = mfusepy.fuse_get_context()
        self._volume.symlink(target, source, uid, gid)
        return 0

    @_locked
    def readlink(self, path: str) -> str:
        return self._volume.readlink(self._volume.resolve(path))

    @_locked
    def mkdir(self, path: str, mode: int) -> int:
        uid, gid, _pid = mfusepy.fuse_get_context()
        self._volume.mkdir(path, mode, uid, gid)
        return 0

    @_locked
    def unlink(self, path: str) -> int:
        self._volume.unlink(path)
        return 0

    @_locked
    def rmdir(self, path: str) -> int:
        self._volume.rmdir(path)
        return 0

    @_locked
    def rename(self, old: str, new: str) -> int:
        self._volume.rename(old, new)
        return 0

    @_locked
    def link(self, target: str, source: str) -> int:
        # mfusepy passes (new name, existing file)
        self._volume.link(source, target)
        return 0

    @_locked
    def opendir(self, path: str) -> int:
        node = self._volume.resolve(path)
        if not node.is_dir:
            raise OSError(errno.ENOTDIR, path)
        return self._open_handle(node)

    @_locked
    def readdir(self, path: str, fh: int) -> list[tuple[str, dict[str, int], int]]:
        node = self._node(path, fh)
        # With use_ino a zero inode number would make readdir(3) hide the entry.
        listing = [(".", {"st_ino": node.ino, "st_mode": node.mode}, 0)]
        listing.append(("..", {"st_ino": node.ino, "st_mode": node.mode}, 0))
        for name in sorted(node.entries):
            child = self._volume.inode(node.entries[name])
            listing.append((name, {"st_ino": child.ino, "st_mode": child.mode}, 0))
        return listing

    @_locked
    def releasedir(self, path: str, fh: int) -> int:
        self._close_handle(fh)
        return 0

    @_locked
    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        self._volume.fsyncdir(self._node(path, fh))
        return 0

    # --- file data --------------------------------------------------------------------

    @_locked
    def open(self, path: str, flags: int) -> int:
        node = self._volume.resolve(path)
        if node.is_dir:
            raise OSError(errno.EISDIR, path)
        return self._open_handle(node)

    @_locked
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return self._volume.read(self._node(path, fh), offset, size)

    @_locked
    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        return self._volume.write(self._node(path, fh), offset, data)

    @_locked
    def fallocate(self, path: str, mode: int, offset: int, size: int, fh: int) -> int:
        if mode != 0:
            raise OSError(errno.EOPNOTSUPP, "only plain fallocate is supported")
        self._volume.fallocate(self._node(path, fh), offset, size)
        return 0

    def flush(self, path: str, fh: int) -> int:
        return 0  # close(2) promises nothing about durability

    @_locked
    def fsync(self, path: str, datasync: int, fh: int) -> int:
        # fdatasync and fsync both persist the size: without it the data is
        # not retrievable, which is exactly what fdatasync guarantees.
        self._volume.fsync(self._node(path, fh))
        return 0

    @_locked
    def release(self, path: str, fh: int) -> int:
        self._close_handle(fh)
        return 0

    @_locked
    def destroy(self, path: str) -> None:
        # Reached on a clean unmount only; a crash kills the process first.
        if self._sync_on_unmount:
            self._volume.sync_all()


def serve(backing: str, mountpoint: str, *, host_fsync: bool = True, allow_other: bool = True) -> None:
    """Mount the volume and serve requests until it is unmounted (blocks)."""
    volume = Volume.load(backing, host_fsync=host_fsync)
    ops = PowerLossOperations(volume)
    options: dict[str, Any] = {
        "foreground": True,
        "fsname": "powerloss",
        "use_ino": True,
        "default_permissions": True,
    }
    if allow_other:
        options["allow_other"] = True
    if not os.path.isdir(mountpoint):
        raise NotADirectoryError(errno.ENOTDIR, "mount point is not a directory", mountpoint)
    mfusepy.FUSE(ops, mountpoint, **options)


__all__ = ["PowerLossOperations", "serve"]
