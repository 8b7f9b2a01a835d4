"""The POSIX driver's namespace: listing, stat, links, attributes, directories, names.

Each step that changes a name makes it durable (the directory synced)
before it returns, as the contract asks.  Hidden partial names
(:mod:`.names`) are never listed.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from collections.abc import Callable, Iterator, Sequence

from transfercore.contract import MetadataChange, ObjectInfo
from transfercore.driverkit import fsync_dir, fsync_inode, new_token
from transfercore.errors import IsADirectory, from_oserror

from . import names
from .confine import PathMapper
from .fsutil import remove_quietly

#: Makes many inodes durable together (:meth:`.batchsync.BatchSync.sync_inodes`).
SyncMany = Callable[[Sequence[str], str], list[BaseException | None]]


def info(path: str, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(
        path=path,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        is_dir=stat_mod.S_ISDIR(st.st_mode),
        identity=f"{st.st_dev}:{st.st_ino}",
        mode=stat_mod.S_IMODE(st.st_mode),
        version=str(st.st_ctime_ns),
        links=st.st_nlink,
    )


def entry_info(path: str, local: str, st: os.stat_result) -> ObjectInfo:
    if stat_mod.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(local)
        except OSError as exc:
            raise from_oserror(exc, f"cannot read the link {path}") from exc
        return ObjectInfo(path=path, size=0, mtime_ns=st.st_mtime_ns, identity=f"{st.st_dev}:{st.st_ino}",
                          mode=stat_mod.S_IMODE(st.st_mode), link=target)
    found = info(path, st)
    if not (stat_mod.S_ISREG(st.st_mode) or stat_mod.S_ISDIR(st.st_mode)):
        return ObjectInfo(path=path, size=0, mtime_ns=st.st_mtime_ns, identity=found.identity,
                          mode=found.mode, special=True)
    return found


#: What following a link that leads nowhere fails with (a loop, a file as a directory).
_BROKEN_LINK = frozenset({errno.ELOOP, errno.ENOTDIR})


def _is_link(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_symlink()
    except OSError:
        return False


def list_directory(paths: PathMapper, path: str) -> Iterator[ObjectInfo]:
    local = paths.local(path)
    try:
        with os.scandir(local) as it:
            entries = sorted((e for e in it if not names.is_hidden(e.name)), key=lambda e: e.name)
    except OSError as exc:
        raise from_oserror(exc, f"cannot list {path}") from exc
    base = path.rstrip("/")
    out = []
    for entry in entries:
        full = os.path.join(local, entry.name)
        if paths.root is not None and entry.is_symlink():
            real = os.path.realpath(full)
            if not (real == paths.root or real.startswith(paths.root + "/")):
                continue  # never reveal what lies outside the served tree
        try:
            st = os.stat(full)
        except OSError as exc:
            if exc.errno == errno.ENOENT or (exc.errno in _BROKEN_LINK and _is_link(entry)):
                continue  # a name removed meanwhile, or a link to nothing (or to itself)
            # A name the directory lists but that cannot be looked at: a client's
            # recursive download of this listing would end without it, unsaid.
            raise from_oserror(exc, f"cannot look at {base}/{entry.name}") from exc
        out.append(info(f"{base}/{entry.name}", st))
    return iter(out)


def scan(paths: PathMapper, path: str) -> Iterator[ObjectInfo]:
    """The entries of a directory, unsorted, one at a time: links reported
    as links (never followed), special files flagged."""
    local = paths.local(path)
    base = path.rstrip("/")
    # Listed through a descriptor of the directory: each entry's lstat is then
    # relative to it (fstatat), where a path would be resolved again from the
    # root, component by component, for every entry of a deep tree.
    try:
        fd = os.open(local, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise from_oserror(exc, f"cannot list {path}") from exc
    try:
        try:
            it = os.scandir(fd)
        except OSError as exc:
            raise from_oserror(exc, f"cannot list {path}") from exc
        with it:
            for entry in it:
                name = entry.name
                if names.is_hidden(name):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed meanwhile
                except OSError as exc:
                    # A name the directory lists but that cannot be looked at (a
                    # directory readable but not searchable): said, not left out.
                    raise from_oserror(exc, f"cannot look at {base}/{name}") from exc
                mode = st.st_mode
                if stat_mod.S_ISREG(mode) or stat_mod.S_ISDIR(mode):
                    yield info(f"{base}/{name}", st)  # (entry_info's own answer for these)
                else:
                    yield entry_info(f"{base}/{name}", f"{local}/{name}", st)
    finally:
        os.close(fd)


def lstat(paths: PathMapper, path: str) -> ObjectInfo:
    local = paths.local(path)
    try:
        st = os.lstat(local)
    except OSError as exc:
        raise from_oserror(exc, f"cannot stat {path}") from exc
    return entry_info(path, local, st)


def symlink(directory: str, name: str, path: str, target: str, *, mtime_ns: int | None = None) -> None:
    """A link ``name`` in ``directory`` (checked by the caller) to ``target``, replacing what is there."""
    temp = os.path.join(directory, names.partial_name(name, new_token()))
    try:
        os.symlink(target, temp)
        if mtime_ns is not None:
            # Before the rename: a link cannot be synced on its own, but its
            # inode is made durable with the directory entry below.
            os.utime(temp, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
        os.rename(temp, os.path.join(directory, name))
    except OSError as exc:
        remove_quietly(temp)
        raise from_oserror(exc, f"cannot create the link {path}") from exc
    fsync_dir(directory)


def hardlink(directory: str, name: str, path: str, source: str, existing: str) -> None:
    """A hard link ``name`` in ``directory`` (checked by the caller) to the local file ``source``."""
    # Under a hidden name first, then renamed: an existing entry is
    # replaced at once, never left missing.
    temp = os.path.join(directory, names.partial_name(name, new_token()))
    try:
        os.link(source, temp, follow_symlinks=False)
        os.rename(temp, os.path.join(directory, name))
    except OSError as exc:
        remove_quietly(temp)
        raise from_oserror(exc, f"cannot link {path} to {existing}") from exc
    fsync_dir(directory)


def set_metadata(local: str, path: str, *, mode: int | None = None, mtime_ns: int | None = None) -> None:
    if _apply_metadata(local, path, mode, mtime_ns):
        # The object's own inode: its sync makes the new attributes durable.
        fsync_inode(local, f"the attributes of {path}")


def set_metadata_many(paths: PathMapper, changes: Sequence[MetadataChange], sync: SyncMany) -> list[BaseException | None]:
    """Every change applied, then the changed inodes synced together: durable together on return."""
    results: list[BaseException | None] = []
    synced: list[str] = []
    where: list[int] = []
    for i, change in enumerate(changes):
        try:
            local = paths.local(change.path)
            if _apply_metadata(local, change.path, change.mode, change.mtime_ns):
                synced.append(local)
                where.append(i)
        except Exception as exc:  # noqa: BLE001 - reported per change
            results.append(exc)
        else:
            results.append(None)
    for i, error in zip(where, sync(synced, "the attributes of"), strict=True):
        results[i] = error
    return results


def _apply_metadata(local: str, path: str, mode: int | None, mtime_ns: int | None) -> bool:
    """Set the attributes; True when the inode must be synced for them to be durable."""
    try:
        if mode is not None and not os.path.islink(local):
            os.chmod(local, stat_mod.S_IMODE(mode))
        if mtime_ns is not None:
            os.utime(local, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
    except OSError as exc:
        raise from_oserror(exc, f"cannot set the permissions or time of {path}") from exc
    # A link cannot be synced alone: symlink(mtime_ns=...) sets it durably.
    return not os.path.islink(local)


def mkdir(local: str, path: str) -> None:
    try:
        os.mkdir(local)
    except OSError as exc:
        raise from_oserror(exc, f"cannot create directory {path}") from exc
    fsync_dir(os.path.dirname(local))


def mkdirs(paths: PathMapper, wanted: Sequence[str], sync: SyncMany) -> list[BaseException | None]:
    """Every directory created, then the parents synced together (a tree's
    directories share few parents): durable together on return."""
    results: list[BaseException | None] = []
    parents: dict[str, list[int]] = {}
    for i, path in enumerate(wanted):
        try:
            local = paths.local(path)
            os.mkdir(local)
        except OSError as exc:
            results.append(from_oserror(exc, f"cannot create directory {path}"))
        except Exception as exc:  # noqa: BLE001 - reported per directory
            results.append(exc)
        else:
            results.append(None)
            parents.setdefault(os.path.dirname(local), []).append(i)
    for created, error in zip(parents.values(), sync(list(parents), "directory"), strict=True):
        if error is not None:
            for i in created:  # none of its new entries is known durable
                results[i] = error
    return results


def rmdir(paths: PathMapper, path: str) -> None:
    local = paths.local(path)
    if local == paths.root:
        raise from_oserror(PermissionError(13, "the root cannot be removed"), f"cannot remove {path}")
    try:
        os.rmdir(local)
    except OSError as exc:
        raise from_oserror(exc, f"cannot remove directory {path}") from exc
    fsync_dir(os.path.dirname(local))


def remove(local: str, directory: str, path: str) -> None:
    if os.path.isdir(local) and not os.path.islink(local):
        raise IsADirectory(f"{path} is a directory; use rmdir", errno=21)
    try:
        os.unlink(local)
    except OSError as exc:
        raise from_oserror(exc, f"cannot remove {path}") from exc
    fsync_dir(directory)


def rename(src: tuple[str, str, str], dst: tuple[str, str, str]) -> None:
    """Rename ``(local, directory, URL path)`` ``src`` to ``dst``; both directories synced."""
    src_local, src_dir, src_path = src
    dst_local, dst_dir, dst_path = dst
    try:
        os.rename(src_local, dst_local)
    except OSError as exc:
        raise from_oserror(exc, f"cannot rename {src_path} to {dst_path}") from exc
    fsync_dir(dst_dir)
    if src_dir != dst_dir:
        fsync_dir(src_dir)
