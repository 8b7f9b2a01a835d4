"""The POSIX driver: local files with fdatasync-backed restart markers.

URLs are ``posix:///abs/path`` (or a plain path).  With ``root=DIR`` the URL
path is relative to ``DIR`` and confined to it (see :mod:`.confine`).

An unfinished object lives under a hidden partial name and is renamed to its
final name only when complete, so a truncated file never appears under the
final name.  Its resume state is the sidecar record (see :mod:`.sidecar`).

This module is the driver's face; the work is by job: :mod:`.partials`
(partial files and resuming), :mod:`.batchsync` (one durable point for a
batch), :mod:`.namespace` (listing, links, attributes, directories, names),
:mod:`.multiwriter` (many writers of one object).
"""

from __future__ import annotations

import builtins
import os
import stat as stat_mod
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from transfercore.capabilities import Capabilities, RestartModel
from transfercore.contract import Driver, LocalFile, MetadataChange, ObjectInfo, RangeWriter, Reader, Writer
from transfercore.driverkit import check_open_write, check_parent_directory
from transfercore.errors import IsADirectory, UnsizedSource, from_oserror
from transfercore.options import OptionSpec, bool_option, choice_option, int_option, size_option, str_option
from transfercore.ranges import ByteRange, RangeSet

# Imported where used, not here: the batch paths (a thread pool, the cffi
# module) and many writers of one object are not what most sessions need, and
# a session of the GridFTP server's DSI pays for every import at its start.
from . import namespace, partials
from .confine import PathMapper
from .direct import MODES as DIRECT_MODES
from .reader import PosixReader, unsized_kind
from .writer import PosixWriter

if TYPE_CHECKING:
    from .batchsync import BatchSync

class PosixDriver(Driver):
    name: ClassVar[str] = "posix"
    options: ClassVar[Mapping[str, OptionSpec]] = {
        "root": str_option("confine every path to this directory; URL paths are then relative to it"),
        "max_writers": int_option("threads that may write one object at once", default=16, minimum=1),
        "block": size_option("preferred block size", default=4 * 1024 * 1024, minimum=1),
        "parallel_pwrite": bool_option(
            "let writer threads pwrite into one file at the same time (helps only on file systems "
            "that do not serialize buffered writes per file)",
            default=False,
        ),
        "direct": choice_option(
            "write and read back block-aligned data with O_DIRECT, bypassing the page cache, so that the "
            "verification read-back comes from the device: auto (if the file system accepts it), on "
            "(required), off",
            DIRECT_MODES,
            default="off",
        ),
        "batch_sync": choice_option(
            "how a batch of objects (a tree copy) is made durable: fsync (every file synced, "
            "concurrently), syncfs (one syncfs(2) of the whole file system per batch), or "
            "auto (the default: syncfs for batches of 32 objects or more on ext4, xfs and btrfs, where "
            "power cuts under the real file systems showed it reaches the device; fsync otherwise)",
            ("fsync", "syncfs", "auto"),
            default="auto",
        ),
        "keep_cache": bool_option(
            "leave the pages of a copy in the page cache (by default a destination range is dropped once "
            "the verification has read it back, or one marker after it became durable, and source bytes "
            "read from the device are dropped once read, so a large copy does not fill memory)",
            default=False,
        ),
    }

    def __init__(self, authority: str = "", options: Mapping[str, Any] | None = None) -> None:
        super().__init__(authority, options)
        if authority not in ("", "localhost"):
            from transfercore.errors import LocationError

            raise LocationError(
                f"posix URLs name local files; host {authority!r} is not supported",
                hint="write posix:///abs/path (three slashes)",
            )
        self._paths = PathMapper.create(self.settings["root"])
        self._write_options = partials.WriteOptions(
            serial_pwrite=not self.settings["parallel_pwrite"],
            direct=self.settings["direct"],
            drop_read_back=not self.settings["keep_cache"],
        )
        self._batch_sync: BatchSync | None = None
        self._leftovers = partials.Leftovers()
        self._caps = Capabilities(
            restart=RestartModel.RANGES,
            ordered_writes=False,
            max_writers=self.settings["max_writers"],
            preferred_block_size=self.settings["block"],
            min_block_size=1,
            checksums=frozenset(),
            atomic_publish=True,
            crash_simulation=False,
            read_back=True,
            range_writers=True,
        )

    @property
    def _batch(self) -> BatchSync:
        if self._batch_sync is None:
            from .batchsync import BatchSync

            self._batch_sync = BatchSync(self.settings["batch_sync"])
        return self._batch_sync

    # -- description -----------------------------------------------------------

    def capabilities(self) -> Capabilities:
        return self._caps

    def describe(self) -> dict[str, Any]:
        return {
            "durability": "fdatasync of the file, fsync of the directory for new names",
            "resume record": "sidecar .<name>.tcpart.marker beside the partial file",
            "root": self._paths.root or "not confined",
            "direct I/O": f"direct={self.settings['direct']}: block-aligned writes and read-backs bypass the "
            "page cache where the file system accepts O_DIRECT",
            "page cache": "kept" if self.settings["keep_cache"] else "dropped once read back or one marker later",
        }

    # -- helpers ---------------------------------------------------------------

    def local_path(self, path: str) -> str:
        """The local file path for URL path ``path`` (confinement applied)."""
        return self._paths.local(path)

    def _split(self, path: str) -> tuple[str, str, str]:
        local = self._paths.local(path)
        return (local, *self._object_name(path, local))

    def _object_name(self, path: str, local: str) -> tuple[str, str]:
        directory, name = os.path.split(local)
        if not name or local == self._paths.root:
            raise IsADirectory(f"{path} is a directory, not an object", hint="give the path of a file")
        return directory, name

    # -- objects ---------------------------------------------------------------

    def stat(self, path: str) -> ObjectInfo:
        local = self._paths.local(path)
        try:
            st = os.stat(local)
        except OSError as exc:
            raise from_oserror(exc, f"cannot stat {path}") from exc
        return namespace.info(path, st)

    def open_write(self, path: str, size: int, resume: RangeSet | None = None) -> Writer:
        resume = check_open_write(size, resume, path)
        local, st = self._paths.located(path)
        directory, name = self._object_name(path, local)
        if st is not None and (stat_mod.S_ISDIR(st.st_mode) or (stat_mod.S_ISLNK(st.st_mode) and os.path.isdir(local))):
            raise IsADirectory(f"{path} is a directory; it cannot be written as an object", errno=21)
        if resume:
            check_parent_directory(directory, path)
            return partials.open_resumed(path, directory, name, size, resume, self._write_options)
        # A fresh write looks at its directory only when creating its partial file fails
        # (open_fresh): a new name in an existing directory costs no stat of it.
        return self._fresh(path, directory, name, size)

    def open_new(self, path: str, size: int) -> Writer:
        check_open_write(size, None, path)
        _local, directory, name = self._split(path)
        # No stale partial to look for: listing the directory for one per file
        # would make a tree copy quadratic in the directory's size.
        return self._fresh(path, directory, name, size, discard=False)

    def _fresh(self, path: str, directory: str, name: str, size: int, *, discard: bool = True) -> PosixWriter:
        if discard and self._leftovers.need_discard(directory, name, path):
            self._discard(directory, name, sync=False)
        return partials.open_fresh(path, directory, name, size, self._write_options)

    def open_read(self, path: str) -> Reader:
        local = self._paths.local(path)
        try:
            if stat_mod.S_ISFIFO(os.stat(local).st_mode):
                # Refused unopened: an open would let a waiting writer in, only to
                # meet a closed pipe (EPIPE) when this reader goes away.
                raise UnsizedSource(f"{path} is a FIFO (named pipe): {_UNSIZED}", hint=_UNSIZED_HINT)
            # O_NONBLOCK: opening a FIFO (made in between) must not wait for a writer (uninterruptibly).
            fd = os.open(local, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as exc:
            raise from_oserror(exc, f"cannot open {path} for reading") from exc
        try:
            st = os.fstat(fd)
            if stat_mod.S_ISDIR(st.st_mode):
                raise IsADirectory(f"{path} is a directory, not an object", errno=21)
            kind = unsized_kind(fd, st)
            if kind is not None:
                raise UnsizedSource(f"{path} is {kind}: {_UNSIZED}", hint=_UNSIZED_HINT)
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return PosixReader(fd, st.st_size, path, drop_fetched=not self.settings["keep_cache"])

    def complete_batch(
        self, writers: Sequence[Writer], verify: Callable[[Writer], None] | None = None
    ) -> list[BaseException | None]:
        """One durable point for many objects: every file synced (concurrently),
        verified, renamed to its final name, then each directory synced once."""
        if not all(isinstance(w, PosixWriter) for w in writers):
            return super().complete_batch(writers, verify)
        return self._batch.complete(writers, verify)  # type: ignore[arg-type]

    def copy_local_batch(
        self, files: Sequence[LocalFile], algorithm: str | None
    ) -> list[tuple[str, ObjectInfo] | None] | None:
        """Small local files copied, synced, verified and published by one C
        call (:mod:`.batchcopy`), with the batch's durable point as in
        :meth:`complete_batch`.  Not offered under ``root`` (confinement is
        checked per path by Python) nor with ``direct``."""
        from . import batchcopy

        if (not batchcopy.available() or (algorithm is not None and algorithm != batchcopy.ALGORITHM)
                or self.settings["root"] or self.settings["direct"] != "off" or not files):
            return None
        locals_ = [self._paths.local(f.path) for f in files]
        use_syncfs = self._batch.uses_syncfs(os.path.dirname(locals_[0]))
        return batchcopy.copy_batch(files, locals_, use_syncfs=use_syncfs, verify=algorithm is not None,
                                    drop_cache=not self.settings["keep_cache"])

    def close(self) -> None:
        if self._batch_sync is not None:
            self._batch_sync.close()

    # -- many writers of one object (see .multiwriter) -------------------------------

    def open_range_write(self, path: str, size: int, span: ByteRange, writer_id: str) -> RangeWriter:
        check_open_write(size, None, path)
        _local, directory, name = self._split(path)
        check_parent_directory(directory, path)
        from . import multiwriter

        return multiwriter.open_range_writer(directory, name, path, size, span, writer_id,
                                             serial_pwrite=not self.settings["parallel_pwrite"],
                                             drop_read_back=not self.settings["keep_cache"])

    def durable_ranges(self, path: str, size: int) -> RangeSet:
        _local, directory, name = self._split(path)
        from . import multiwriter

        return multiwriter.durable_ranges(directory, name, size, path)

    def publish_ranges(self, path: str, size: int, verify: Callable[[Reader], None] | None = None) -> None:
        _local, directory, name = self._split(path)
        from . import multiwriter

        multiwriter.publish(directory, name, size, path, verify, drop_fetched=not self.settings["keep_cache"])

    def partial(self, path: str) -> RangeSet:
        _local, directory, name = self._split(path)
        return partials.held_ranges(directory, name)

    def discard_partial(self, path: str) -> None:
        _local, directory, name = self._split(path)
        self._discard(directory, name, sync=True)

    def _discard(self, directory: str, name: str, *, sync: bool) -> None:
        partials.discard(directory, name, sync=sync)

    def sweep_partials(
        self, directory: str, discard: Collection[str], keep: Collection[str] = ()
    ) -> tuple[int, int]:
        return partials.sweep(self._paths.local(directory), directory, discard, keep)

    # -- namespace (see .namespace) ----------------------------------------------

    def list(self, path: str) -> Iterator[ObjectInfo]:
        return namespace.list_directory(self._paths, path)

    def scan(self, path: str) -> Iterator[ObjectInfo]:
        """The entries of a directory, unsorted, one at a time: links reported
        as links (never followed), special files flagged."""
        return namespace.scan(self._paths, path)

    def lstat(self, path: str) -> ObjectInfo:
        return namespace.lstat(self._paths, path)

    def symlink(self, path: str, target: str, *, mtime_ns: int | None = None) -> None:
        _local, directory, name = self._split(path)
        check_parent_directory(directory, path)
        namespace.symlink(directory, name, path, target, mtime_ns=mtime_ns)

    def hardlink(self, path: str, existing: str) -> None:
        _local, directory, name = self._split(path)
        check_parent_directory(directory, path)
        namespace.hardlink(directory, name, path, self._paths.local(existing), existing)

    def set_metadata(self, path: str, *, mode: int | None = None, mtime_ns: int | None = None) -> None:
        namespace.set_metadata(self._paths.local(path), path, mode=mode, mtime_ns=mtime_ns)

    def set_metadata_many(self, changes: Sequence[MetadataChange]) -> builtins.list[BaseException | None]:
        """Every change applied, then the inodes synced together (one ``syncfs``
        where ``batch_sync`` allows it, else concurrent syncs): durable together on return."""
        return namespace.set_metadata_many(self._paths, changes, self._batch.sync_inodes)

    def mkdir(self, path: str) -> None:
        namespace.mkdir(self._paths.local(path), path)

    def mkdirs(self, paths: Sequence[str]) -> builtins.list[BaseException | None]:
        """Every directory created, then each parent synced once (a tree's
        directories share few parents): durable together on return."""
        return namespace.mkdirs(self._paths, paths, self._batch.sync_inodes)

    def rmdir(self, path: str) -> None:
        namespace.rmdir(self._paths, path)

    def remove(self, path: str) -> None:
        local, directory, _name = self._split(path)
        namespace.remove(local, directory, path)

    def rename(self, src: str, dst: str) -> None:
        src_local, src_dir, _ = self._split(src)
        dst_local, dst_dir, _ = self._split(dst)
        namespace.rename((src_local, src_dir, src), (dst_local, dst_dir, dst))


_UNSIZED = (
    "its size cannot be known before reading it to its end, so it cannot be copied by positional reads "
    "and nothing was written"
)
_UNSIZED_HINT = (
    "copy it with 'transfercore copy' from the command line, which reads such a source to its end first, "
    "or copy a regular file"
)
