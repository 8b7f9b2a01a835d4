"""The power-loss volume: an in-memory file tree over a durable backing store.

Every change lands in memory first.  Only the calls that make data durable on
a real POSIX file system copy state into the backing directory:

* ``fsync``/``fdatasync`` of a file persists that file's bytes, size and
  attributes, but **not** its directory entry;
* ``fsync`` of a directory persists that directory's entries (names created,
  renamed or removed in it).

This is the LazyFS model: a new file survives a crash only after both the file
and its parent directory were fsynced.  Anything else is lost by
:meth:`Volume.load`, which rebuilds the tree from the backing directory alone,
exactly as a machine sees its disk after a power cut.

The backing store is keyed by inode number, so renames and hard links need no
copying: ``inodes/<ino>.meta`` (JSON attributes, and entries for a directory)
and ``inodes/<ino>.data`` (the durable bytes of a file).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import time
from collections.abc import Iterator
from typing import Any

import attrs

from ...driverkit import fsync_dir

ROOT_INO = 1
_META = ".meta"
_DATA = ".data"


def _fail(code: int, what: str) -> OSError:
    return OSError(code, os.strerror(code), what)


@attrs.define(eq=False)
class Inode:
    """One file or directory as the running system sees it (mutable by design)."""

    ino: int
    mode: int
    uid: int = 0
    gid: int = 0
    mtime_ns: int = attrs.field(factory=time.time_ns)
    ctime_ns: int = attrs.field(factory=time.time_ns)
    nlink: int = 0
    #: file bytes; ``None`` until first needed (loaded lazily from the backing store)
    data: bytearray | None = None
    #: directory entries, name -> inode number
    entries: dict[str, int] = attrs.field(factory=dict)
    #: byte ranges of ``data`` written since the last fsync
    dirty: list[tuple[int, int]] = attrs.field(factory=list)
    #: whether the backing store holds a record for this inode at all
    persisted: bool = False
    open_count: int = 0

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)


@attrs.frozen
class VolumeStats:
    """Counters a test can read to check which durability calls reached the volume."""

    file_syncs: int
    dir_syncs: int


class Volume:
    """The whole file tree; every method is one file-system operation.

    Not thread-safe: the FUSE adapter serializes calls with one lock.
    """

    def __init__(self, backing: str | os.PathLike[str], *, host_fsync: bool = True) -> None:
        self._backing = os.fspath(backing)
        self._dir = os.path.join(self._backing, "inodes")
        # host_fsync makes the backing store itself survive a real power cut;
        # a simulated crash (killing the daemon) only needs the bytes written.
        self._host_fsync = host_fsync
        self._inodes: dict[int, Inode] = {}
        self._next_ino = ROOT_INO + 1
        self._file_syncs = 0
        self._dir_syncs = 0

    # --- loading: what survived ------------------------------------------------

    @classmethod
    def load(cls, backing: str | os.PathLike[str], *, host_fsync: bool = True) -> Volume:
        """Rebuild the tree from durable state only, discarding unreachable records."""
        vol = cls(backing, host_fsync=host_fsync)
        os.makedirs(vol._dir, exist_ok=True)
        metas: dict[int, dict[str, Any]] = {}
        for name in os.listdir(vol._dir):
            stem, ext = os.path.splitext(name)
            if ext == _META and stem.isdigit():
                with open(os.path.join(vol._dir, name), encoding="utf-8") as fh:
                    metas[int(stem)] = json.load(fh)
        if ROOT_INO not in metas:
            root = Inode(ROOT_INO, stat.S_IFDIR | 0o755, nlink=2)
            vol._inodes[ROOT_INO] = root
            vol._persist_meta(root)
            metas[ROOT_INO] = vol._meta_record(root)
        vol._adopt_reachable(metas)
        vol._collect_garbage()
        vol._next_ino = max([ROOT_INO, *metas]) + 1
        return vol

    @classmethod
    def seed(cls, backing: str | os.PathLike[str], name: str, source: str | os.PathLike[str], mode: int = 0o600) -> None:
        """Put a copy of the host file ``source`` at ``/name`` of the volume kept in
        ``backing`` (not mounted), durable under its name: a large starting image
        (a file-system image, say) without pushing every byte through FUSE."""
        vol = cls.load(backing, host_fsync=False)
        node = vol.create("/" + name, mode)
        shutil.copyfile(source, vol._path(node.ino, _DATA))
        node.data = None  # read from the backing store when first needed
        vol._persist_meta(node)
        vol.fsyncdir(vol.resolve("/"))

    def _adopt_reachable(self, metas: dict[int, dict[str, Any]]) -> None:
        # Walk from the root so that records whose entry never became durable
        # (fsynced file, parent never fsynced) disappear, as on a real disk.
        self._inodes[ROOT_INO] = _from_record(ROOT_INO, metas[ROOT_INO])
        pending = [ROOT_INO]
        while pending:
            node = self._inodes[pending.pop()]
            for name, child in metas[node.ino].get("entries", {}).items():
                record = metas.get(child)
                if record is None:
                    continue
                if stat.S_ISDIR(record["mode"]):
                    if child in self._inodes:
                        continue  # a directory durable under two names keeps the first
                    pending.append(child)
                if child not in self._inodes:
                    self._inodes[child] = _from_record(child, record)
                node.entries[name] = child
        for node in self._inodes.values():
            if node.is_dir:
                node.nlink += 2
            for child in node.entries.values():
                self._inodes[child].nlink += 0 if self._inodes[child].is_dir else 1
                node.nlink += 1 if self._inodes[child].is_dir else 0

    def _collect_garbage(self) -> None:
        for name in os.listdir(self._dir):
            stem, _ = os.path.splitext(name)
            if not stem.isdigit() or int(stem) not in self._inodes:
                os.unlink(os.path.join(self._dir, name))

    # --- lookup --------------------------------------------------------------------

    def resolve(self, path: str) -> Inode:
        node = self._inodes[ROOT_INO]
        for part in _parts(path):
            if not node.is_dir:
                raise _fail(errno.ENOTDIR, path)
            child = node.entries.get(part)
            if child is None:
                raise _fail(errno.ENOENT, path)
            node = self._inodes[child]
        return node

    def inode(self, ino: int) -> Inode:
        try:
            return self._inodes[ino]
        except KeyError:
            raise _fail(errno.EBADF, f"inode {ino}") from None

    def _parent_of(self, path: str) -> tuple[Inode, str]:
        parts = _parts(path)
        if not parts:
            raise _fail(errno.EBUSY, path)
        parent = self.resolve("/" + "/".join(parts[:-1]))
        if not parent.is_dir:
            raise _fail(errno.ENOTDIR, path)
        return parent, parts[-1]

    def listdir(self, path: str) -> list[str]:
        node = self.resolve(path)
        if not node.is_dir:
            raise _fail(errno.ENOTDIR, path)
        return sorted(node.entries)

    def stats(self) -> VolumeStats:
        return VolumeStats(self._file_syncs, self._dir_syncs)

    # --- namespace changes (memory only until the parent is fsynced) ----------

    def _new_inode(self, mode: int, uid: int, gid: int) -> Inode:
        node = Inode(self._next_ino, mode, uid, gid)
        self._next_ino += 1
        if not node.is_dir:
            node.data = bytearray()
        self._inodes[node.ino] = node
        return node

    def create(self, path: str, mode: int, uid: int = 0, gid: int = 0) -> Inode:
        parent, name = self._parent_of(path)
        if name in parent.entries:
            raise _fail(errno.EEXIST, path)
        node = self._new_inode(stat.S_IFREG | stat.S_IMODE(mode), uid, gid)
        node.nlink = 1
        parent.entries[name] = node.ino
        _touch(parent)
        return node

    def symlink(self, path: str, target: str, uid: int = 0, gid: int = 0) -> Inode:
        parent, name = self._parent_of(path)
        if name in parent.entries:
            raise _fail(errno.EEXIST, path)
        node = self._new_inode(stat.S_IFLNK | 0o777, uid, gid)
        node.nlink = 1
        node.data = bytearray(os.fsencode(target))
        node.dirty.append((0, len(node.data)))
        parent.entries[name] = node.ino
        _touch(parent)
        return node

    def readlink(self, node: Inode) -> str:
        if not stat.S_ISLNK(node.mode):
            raise _fail(errno.EINVAL, f"inode {node.ino}")
        return os.fsdecode(bytes(self._data(node)))

    def mkdir(self, path: str, mode: int, uid: int = 0, gid: int = 0) -> Inode:
        parent, name = self._parent_of(path)
        if name in parent.entries:
            raise _fail(errno.EEXIST, path)
        node = self._new_inode(stat.S_IFDIR | stat.S_IMODE(mode), uid, gid)
        node.nlink = 2
        parent.entries[name] = node.ino
        parent.nlink += 1
        _touch(parent)
        return node

    def unlink(self, path: str) -> None:
        parent, name = self._parent_of(path)
        node = self.resolve(path)
        if node.is_dir:
            raise _fail(errno.EISDIR, path)
        del parent.entries[name]
        _touch(parent)
        self._drop_link(node)

    def rmdir(self, path: str) -> None:
        parent, name = self._parent_of(path)
        node = self.resolve(path)
        if not node.is_dir:
            raise _fail(errno.ENOTDIR, path)
        if node.entries:
            raise _fail(errno.ENOTEMPTY, path)
        del parent.entries[name]
        parent.nlink -= 1
        _touch(parent)
        node.nlink = 0
        self._forget_if_unused(node)

    def link(self, existing: str, new: str) -> None:
        node = self.resolve(existing)
        if node.is_dir:
            raise _fail(errno.EPERM, existing)
        parent, name = self._parent_of(new)
        if name in parent.entries:
            raise _fail(errno.EEXIST, new)
        parent.entries[name] = node.ino
        node.nlink += 1
        _touch(parent)

    def rename(self, old: str, new: str) -> None:
        src_parent, src_name = self._parent_of(old)
        node = self.resolve(old)
        dst_parent, dst_name = self._parent_of(new)
        if node.is_dir and _is_within(new, old):
            raise _fail(errno.EINVAL, new)
        replaced_ino = dst_parent.entries.get(dst_name)
        if replaced_ino == node.ino:
            return
        if replaced_ino is not None:
            replaced = self._inodes[replaced_ino]
            if replaced.is_dir != node.is_dir:
                raise _fail(errno.EISDIR if replaced.is_dir else errno.ENOTDIR, new)
            if replaced.is_dir and replaced.entries:
                raise _fail(errno.ENOTEMPTY, new)
        del src_parent.entries[src_name]
        dst_parent.entries[dst_name] = node.ino
        if node.is_dir and src_parent is not dst_parent:
            src_parent.nlink -= 1
            dst_parent.nlink += 1
        if replaced_ino is not None:
            replaced = self._inodes[replaced_ino]
            if replaced.is_dir:
                dst_parent.nlink -= 1
                replaced.nlink = 0
                self._forget_if_unused(replaced)
            else:
                self._drop_link(replaced)
        _touch(src_parent)
        _touch(dst_parent)

    def _drop_link(self, node: Inode) -> None:
        node.nlink -= 1
        self._forget_if_unused(node)

    def _forget_if_unused(self, node: Inode) -> None:
        # The backing record stays: until the parent is fsynced the old entry
        # is still the durable truth and must come back after a crash.
        if node.nlink <= 0 and node.open_count <= 0:
            self._inodes.pop(node.ino, None)

    # --- attributes ------------------------------------------------------------------

    def chmod(self, node: Inode, mode: int) -> None:
        node.mode = stat.S_IFMT(node.mode) | stat.S_IMODE(mode)
        node.ctime_ns = time.time_ns()

    def chown(self, node: Inode, uid: int, gid: int) -> None:
        if uid != -1:
            node.uid = uid
        if gid != -1:
            node.gid = gid
        node.ctime_ns = time.time_ns()

    def utimens(self, node: Inode, mtime_ns: int | None) -> None:
        node.mtime_ns = time.time_ns() if mtime_ns is None else mtime_ns

    def size(self, node: Inode) -> int:
        return len(self._data(node)) if not node.is_dir else 4096

    # --- open files ----------------------------------------------------------------

    def opened(self, node: Inode) -> None:
        node.open_count += 1

    def released(self, node: Inode) -> None:
        node.open_count -= 1
        self._forget_if_unused(node)

    def _data(self, node: Inode) -> bytearray:
        if node.data is None:
            try:
                with open(self._path(node.ino, _DATA), "rb") as fh:
                    node.data = bytearray(fh.read())
            except FileNotFoundError:
                node.data = bytearray()
        return node.data

    def read(self, node: Inode, offset: int, size: int) -> bytes:
        return bytes(self._data(node)[offset : offset + size])

    def write(self, node: Inode, offset: int, payload: bytes) -> int:
        data = self._data(node)
        end = offset + len(payload)
        if offset > len(data):
            node.dirty.append((len(data), offset))
            data.extend(bytes(offset - len(data)))
        data[offset:end] = payload
        node.dirty.append((offset, end))
        _touch(node)
        return len(payload)

    def truncate(self, node: Inode, length: int) -> None:
        if node.is_dir:
            raise _fail(errno.EISDIR, f"inode {node.ino}")
        data = self._data(node)
        if length < len(data):
            del data[length:]
        else:
            node.dirty.append((len(data), length))
            data.extend(bytes(length - len(data)))
        _touch(node)

    def fallocate(self, node: Inode, offset: int, length: int) -> None:
        end = offset + length
        if end > len(self._data(node)):
            self.truncate(node, end)

    # --- durability -------------------------------------------------------------------

    def fsync(self, node: Inode) -> None:
        """Make one file's bytes, size and attributes durable (not its name)."""
        if node.is_dir:
            self.fsyncdir(node)
            return
        data = self._data(node)
        fd = os.open(self._path(node.ino, _DATA), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            for start, end in _merge(node.dirty, len(data)):
                os.pwrite(fd, memoryview(data)[start:end], start)
            os.ftruncate(fd, len(data))
            if self._host_fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        node.dirty.clear()
        self._persist_meta(node)
        self._file_syncs += 1

    def fsyncdir(self, node: Inode) -> None:
        """Make one directory's entries durable (not the children's contents)."""
        for child_ino in node.entries.values():
            child = self._inodes[child_ino]
            if stat.S_ISLNK(child.mode) and (child.dirty or not child.persisted):
                # A link's target lives in its inode and is committed with its
                # directory entry, as journalling file systems do.
                self.fsync(child)
            elif not child.persisted:
                # The entry must point at a record: a never-fsynced file comes
                # back empty, a never-fsynced directory comes back empty.
                self._persist_meta(child, entries={} if child.is_dir else None)
        self._persist_meta(node)
        self._dir_syncs += 1

    def sync_all(self) -> None:
        """What a clean unmount does: everything becomes durable."""
        for node in list(self._inodes.values()):
            if not node.is_dir:
                self.fsync(node)
        for node in list(self._inodes.values()):
            if node.is_dir:
                self.fsyncdir(node)

    def _meta_record(self, node: Inode, entries: dict[str, int] | None = None) -> dict[str, Any]:
        rec: dict[str, Any] = {"mode": node.mode, "uid": node.uid, "gid": node.gid, "mtime_ns": node.mtime_ns}
        if node.is_dir:
            rec["entries"] = dict(node.entries) if entries is None else entries
        return rec

    def _persist_meta(self, node: Inode, entries: dict[str, int] | None = None) -> None:
        final = self._path(node.ino, _META)
        tmp = final + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self._meta_record(node, entries), fh)
            if self._host_fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, final)
        if self._host_fsync:
            fsync_dir(self._dir)
        node.persisted = True

    def _path(self, ino: int, ext: str) -> str:
        return os.path.join(self._dir, f"{ino}{ext}")

    def walk(self) -> Iterator[tuple[str, Inode]]:
        """Every reachable path and its inode, parents first (for tests and tools)."""
        pending = [("/", self._inodes[ROOT_INO])]
        while pending:
            path, node = pending.pop()
            yield path, node
            if node.is_dir:
                for name in sorted(node.entries, reverse=True):
                    pending.append((os.path.join(path, name), self._inodes[node.entries[name]]))


def _from_record(ino: int, record: dict[str, Any]) -> Inode:
    return Inode(
        ino, record["mode"], record["uid"], record["gid"], record["mtime_ns"], record["mtime_ns"], persisted=True
    )


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


def _is_within(path: str, ancestor: str) -> bool:
    a, p = _parts(ancestor), _parts(path)
    return p[: len(a)] == a and len(p) > len(a)


def _touch(node: Inode) -> None:
    node.mtime_ns = node.ctime_ns = time.time_ns()


def _merge(ranges: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        end = min(end, size)
        if start >= end:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
