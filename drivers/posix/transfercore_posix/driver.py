"""The POSIX driver: local files with fdatasync-backed restart markers.

URLs are ``posix:///abs/path`` (or a plain path).  With ``root=DIR`` the URL
path is relative to ``DIR`` and confined to it (see :mod:`.confine`).

An unfinished object lives under a hidden partial name and is renamed to its
final name only when complete, so a truncated file never appears under the
final name.  Its resume state is the sidecar record (see :mod:`.sidecar`).
"""

from __future__ import annotations

import builtins
import os
import stat as stat_mod
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from transfercore.capabilities import Capabilities, RestartModel
from transfercore.contract import Driver, LocalFile, ObjectInfo, RangeWriter, Reader, Writer
from transfercore.driverkit import check_open_write, check_resume, fsync_dir, fsync_inode, new_token
from transfercore.errors import (
    IsADirectory,
    NotADirectory,
    NotFound,
    RestartRejected,
    UnsizedSource,
    from_oserror,
)
from transfercore.options import OptionSpec, bool_option, choice_option, int_option, size_option, str_option
from transfercore.ranges import ByteRange, RangeSet

from . import batchcopy, multiwriter, names, sidecar
from .confine import PathMapper
from .direct import MODES as DIRECT_MODES
from .direct import DirectFile, alignment_of, open_direct
from .fsutil import SYNCFS_DURABLE, fs_type, remove_quietly
from .reader import PosixReader, unsized_kind
from .sidecar import CorruptSidecar, SidecarRecord
from .writer import PosixWriter

_RW = os.O_RDWR | os.O_CLOEXEC
#: Threads syncing the files of one batch at once.  Concurrent syncs of a
#: journalling file system share its commits, so a batch costs about one
#: commit, not one per file.
BATCH_SYNC_THREADS = 16
#: In ``auto`` mode a batch of fewer objects is synced file by file
#: (concurrently), a larger one with one ``syncfs``: ``syncfs`` also flushes
#: every other writer's dirty pages on the file system, so for a few small
#: files (a server's group commit of 2-8 uploads) it cost 1.1-5x their own
#: syncs on a shared disk (medians), and 1.2-1.5x still at 16-64 files: it
#: is kept for large batches, where it saves the threads.
SYNCFS_FROM = 32


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
        self._pool_lock = threading.Lock()
        self._sync_pool: ThreadPoolExecutor | None = None
        #: Whether syncfs reaches the media, by directory (asked once each).
        self._fs_types: dict[str, bool] = {}
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
        directory, name = os.path.split(local)
        if not name or local == self._paths.root:
            raise IsADirectory(f"{path} is a directory, not an object", hint="give the path of a file")
        return local, directory, name

    @staticmethod
    def _check_directory(directory: str, path: str) -> None:
        try:
            st = os.stat(directory)
        except OSError as exc:
            if exc.errno == 2:
                raise NotFound(
                    f"the directory of {path} does not exist",
                    errno=exc.errno,
                    hint="create the directory first; missing directories are not created for you",
                ) from None
            raise from_oserror(exc, f"cannot reach the directory of {path}") from exc
        if not stat_mod.S_ISDIR(st.st_mode):
            raise NotADirectory(f"the parent of {path} is not a directory", errno=20)

    # -- objects ---------------------------------------------------------------

    def stat(self, path: str) -> ObjectInfo:
        local = self._paths.local(path)
        try:
            st = os.stat(local)
        except OSError as exc:
            raise from_oserror(exc, f"cannot stat {path}") from exc
        return _info(path, st)

    def open_write(self, path: str, size: int, resume: RangeSet | None = None) -> Writer:
        resume = check_open_write(size, resume, path)
        local, directory, name = self._split(path)
        self._check_directory(directory, path)
        if os.path.isdir(local):
            raise IsADirectory(f"{path} is a directory; it cannot be written as an object", errno=21)
        if resume:
            return self._resume(path, directory, name, size, resume)
        return self._fresh(path, directory, name, size)

    def open_new(self, path: str, size: int) -> Writer:
        check_open_write(size, None, path)
        _local, directory, name = self._split(path)
        # No stale partial to look for: listing the directory for one per file
        # would make a tree copy quadratic in the directory's size.
        return self._fresh(path, directory, name, size, discard=False)

    def _fresh(self, path: str, directory: str, name: str, size: int, *, discard: bool = True) -> PosixWriter:
        if discard:
            self._discard(directory, name, sync=False)
        token = new_token()
        partial = os.path.join(directory, names.partial_name(name, token))
        try:
            fd = os.open(partial, _RW | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as exc:
            if exc.errno == 2:
                self._check_directory(directory, path)
            raise from_oserror(exc, f"cannot create the partial file of {path}") from exc
        try:
            direct = self._open_direct(partial, fd)
        except BaseException:
            os.close(fd)
            remove_quietly(partial)
            raise
        st = os.fstat(fd)
        record = SidecarRecord(size=size, ranges=RangeSet(), dev=st.st_dev, ino=st.st_ino, token=token)
        # No record yet: the first durable() stores it, and its directory fsync
        # also makes the new partial file's name durable.  An object written
        # and completed without a marker costs no record at all.
        return PosixWriter(
            fd=fd, directory=directory, name=name, display=path,
            record=record, resumed=RangeSet(), record_stored=False,
            serial_pwrite=not self.settings["parallel_pwrite"], direct=direct,
            drop_read_back=not self.settings["keep_cache"],
        )

    def _resume(self, path: str, directory: str, name: str, size: int, resume: RangeSet) -> PosixWriter:
        if resume.end() > size:
            raise RestartRejected(f"cannot resume {path}: marker {resume} goes past the size {size}")
        record, reason = self._load(directory, name)
        if record is None:
            raise RestartRejected(f"cannot resume {path}: {reason}")
        check_resume(path, resume, size, record.size, record.ranges)
        fd, why = self._open_partial(directory, name, record)
        if fd is None:
            raise RestartRejected(f"cannot resume {path}: {why}")
        self._remove_temp_records(directory, name)
        stored = True
        try:
            direct = self._open_direct(os.path.join(directory, names.partial_name(name, record.token)), fd)
        except BaseException:
            os.close(fd)
            raise
        if record.ranges != resume:
            # The caller will rewrite what it does not hold; the record must not
            # keep claiming bytes that are about to be overwritten.
            try:
                sidecar.store(directory, name, record.with_ranges(resume))
            except BaseException:
                if direct is not None:
                    direct.close()
                os.close(fd)
                raise
            record = record.with_ranges(resume)
        return PosixWriter(
            fd=fd, directory=directory, name=name, display=path,
            record=record, resumed=resume, record_stored=stored,
            serial_pwrite=not self.settings["parallel_pwrite"], direct=direct,
            drop_read_back=not self.settings["keep_cache"],
        )

    @staticmethod
    def _remove_temp_records(directory: str, name: str) -> None:
        # A writer killed between writing its new record and renaming it into
        # place (another process, or another host's worker) leaves the
        # temporary record behind; whoever resumes the object clears it.
        temp = names.hidden_prefix(name) + names.SIDECAR_SUFFIX[1:]
        try:
            entries = [e for e in os.listdir(directory) if e.startswith(temp)]
        except OSError:
            return
        pattern = names.leftover_pattern(name)
        for entry in entries:
            if pattern.fullmatch(entry):
                remove_quietly(os.path.join(directory, entry))

    def _open_direct(self, partial: str, fd: int) -> DirectFile | None:
        mode = self.settings["direct"]
        direct_fd = open_direct(partial, mode)
        if direct_fd is None:
            return None
        return DirectFile(direct_fd, alignment_of(fd), strict=mode == "on")

    def _load(self, directory: str, name: str) -> tuple[SidecarRecord | None, str]:
        try:
            record = sidecar.load(directory, name)
        except CorruptSidecar as exc:
            return None, str(exc)
        if record is None:
            return None, "there is no durable resume record (never made durable, or discarded)"
        return record, ""

    @staticmethod
    def _open_partial(directory: str, name: str, record: SidecarRecord) -> tuple[int | None, str]:
        partial = os.path.join(directory, names.partial_name(name, record.token))
        try:
            fd = os.open(partial, _RW)
        except FileNotFoundError:
            return None, "the partial file named by the resume record is gone"
        except OSError as exc:
            raise from_oserror(exc, f"cannot open the partial file {partial}") from exc
        st = os.fstat(fd)
        # The random token in the name already ties the file to the record; the
        # device number is left out because it can change across a remount or
        # reboot (FUSE, btrfs, LVM) and would then reject a valid marker.
        if st.st_ino != record.ino:
            os.close(fd)
            return None, "the partial file was replaced since the resume record was written"
        if st.st_size < record.ranges.end():
            os.close(fd)
            return None, f"the partial file holds {st.st_size} bytes, less than the recorded {record.ranges.end()}"
        return fd, ""

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
        batch: list[PosixWriter] = list(writers)  # type: ignore[arg-type]
        results: list[BaseException | None] = [None] * len(batch)

        def sync(writer: PosixWriter) -> BaseException | None:
            try:
                writer.sync_for_batch()
            except Exception as exc:  # noqa: BLE001 - reported per object
                return exc
            return None

        if len(batch) > 1 and self._batch_syncfs(batch[0].directory, len(batch)):
            synced = self._sync_by_syncfs(batch)
        elif len(batch) > 1:
            synced = list(self._pool().map(sync, batch))
        else:
            synced = [sync(w) for w in batch]
        directories: set[str] = set()
        records: set[str] = set()
        for i, writer in enumerate(batch):
            error = synced[i]
            if error is None and verify is not None:
                try:
                    verify(writer)
                except Exception as exc:  # noqa: BLE001 - reported per object
                    error = exc
            if error is None:
                try:
                    recorded = writer.publish_from_batch()
                except Exception as exc:  # noqa: BLE001 - reported per object
                    error = exc
                else:
                    directories.add(writer.directory)
                    if recorded:
                        records.add(writer.directory)
            if error is not None:
                results[i] = error
                try:
                    writer.abort()
                except Exception:  # noqa: BLE001 - the first error is the one to report
                    pass
        # The renames are durable once their directories are: only then is
        # any object of the batch reported as published.
        failed_dirs: dict[str, BaseException] = {}
        for directory in sorted(directories):
            try:
                fsync_dir(directory)
            except Exception as exc:  # noqa: BLE001
                failed_dirs[directory] = exc
        for i, writer in enumerate(batch):
            if results[i] is None and writer.directory in failed_dirs:
                results[i] = failed_dirs[writer.directory]
        for directory in sorted(records - set(failed_dirs)):
            for writer in batch:
                if writer.directory == directory:
                    writer.forget_record()
            try:
                fsync_dir(directory)
            except Exception:  # noqa: BLE001 - a stale record of a published object is harmless
                pass
        return results

    def copy_local_batch(
        self, files: Sequence[LocalFile], algorithm: str | None
    ) -> list[tuple[str, ObjectInfo] | None] | None:
        """Small local files copied, synced, verified and published by one C
        call (:mod:`.batchcopy`), with the batch's durable point as in
        :meth:`complete_batch`.  Not offered under ``root`` (confinement is
        checked per path by Python) nor with ``direct``."""
        if (not batchcopy.available() or (algorithm is not None and algorithm != batchcopy.ALGORITHM)
                or self.settings["root"] or self.settings["direct"] != "off" or not files):
            return None
        locals_ = [self._paths.local(f.path) for f in files]
        use_syncfs = self._batch_syncfs(os.path.dirname(locals_[0]))
        return batchcopy.copy_batch(files, locals_, use_syncfs=use_syncfs, verify=algorithm is not None,
                                    drop_cache=not self.settings["keep_cache"])

    def _batch_syncfs(self, directory: str, count: int | None = None) -> bool:
        """Whether a batch (of ``count`` objects; ``None``: a tree copy's) syncs with one syncfs."""
        mode = self.settings["batch_sync"]
        if mode != "auto":
            return bool(mode == "syncfs")
        if count is not None and count < SYNCFS_FROM:
            return False
        found = self._fs_types.get(directory)
        if found is None:
            if len(self._fs_types) > 4096:
                self._fs_types.clear()
            found = self._fs_types[directory] = fs_type(directory) in SYNCFS_DURABLE
        return found

    @staticmethod
    def _sync_by_syncfs(batch: list[PosixWriter]) -> list[BaseException | None]:
        """Every file prepared (attributes applied), then one syncfs for all:
        a single journal commit instead of one wait per file."""
        prepared: list[BaseException | None] = []
        for writer in batch:
            try:
                writer.sync_for_batch(sync=False)
            except Exception as exc:  # noqa: BLE001 - reported per object
                prepared.append(exc)
            else:
                prepared.append(None)
        devices: dict[int, PosixWriter] = {}
        for writer, error in zip(batch, prepared, strict=True):
            if error is None:
                devices.setdefault(writer.device, writer)
        failed: BaseException | None = None
        for writer in devices.values():
            try:
                writer.syncfs()
            except Exception as exc:  # noqa: BLE001 - no object of the batch is durable
                failed = exc
        if failed is not None:
            return [error or failed for error in prepared]
        return prepared

    def _pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._sync_pool is None:
                self._sync_pool = ThreadPoolExecutor(BATCH_SYNC_THREADS, thread_name_prefix="posix-sync")
            return self._sync_pool

    def close(self) -> None:
        with self._pool_lock:
            pool, self._sync_pool = self._sync_pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    # -- many writers of one object (see .multiwriter) -------------------------------

    def open_range_write(self, path: str, size: int, span: ByteRange, writer_id: str) -> RangeWriter:
        check_open_write(size, None, path)
        _local, directory, name = self._split(path)
        self._check_directory(directory, path)
        return multiwriter.open_range_writer(directory, name, path, size, span, writer_id,
                                             serial_pwrite=not self.settings["parallel_pwrite"],
                                             drop_read_back=not self.settings["keep_cache"])

    def durable_ranges(self, path: str, size: int) -> RangeSet:
        _local, directory, name = self._split(path)
        return multiwriter.durable_ranges(directory, name, size, path)

    def publish_ranges(self, path: str, size: int, verify: Callable[[Reader], None] | None = None) -> None:
        _local, directory, name = self._split(path)
        multiwriter.publish(directory, name, size, path, verify, drop_fetched=not self.settings["keep_cache"])

    def partial(self, path: str) -> RangeSet:
        _local, directory, name = self._split(path)
        record, _ = self._load(directory, name)
        if record is None:
            return RangeSet()
        fd, _ = self._open_partial(directory, name, record)
        if fd is None:
            return RangeSet()
        os.close(fd)
        return record.ranges

    def discard_partial(self, path: str) -> None:
        _local, directory, name = self._split(path)
        self._discard(directory, name, sync=True)

    def _discard(self, directory: str, name: str, *, sync: bool) -> None:
        # The record goes first: a crash in between leaves partial files with no
        # record, which nothing trusts, rather than a record naming a lost file.
        removed = sidecar.remove(directory, name)
        prefix = names.hidden_prefix(name)
        try:
            # A cheap prefix test first: compiling the pattern costs more than
            # the listing, and most objects have no leftovers at all.
            entries = [e for e in os.listdir(directory) if e.startswith(prefix)]
        except OSError as exc:
            raise from_oserror(exc, f"cannot list {directory}") from exc
        if entries:
            pattern = names.leftover_pattern(name)
            entries = [e for e in entries if pattern.fullmatch(e)]
        for entry in entries:
            removed = remove_quietly(os.path.join(directory, entry)) or removed
        if removed and sync:
            fsync_dir(directory)

    def sweep_partials(
        self, directory: str, discard: Collection[str], keep: Collection[str] = ()
    ) -> tuple[int, int]:
        local = self._paths.local(directory)
        try:
            hidden = [e for e in os.listdir(local) if e.startswith(".") and names.is_hidden(e)]
        except FileNotFoundError:
            return 0, 0
        except OSError as exc:
            raise from_oserror(exc, f"cannot list {directory}") from exc
        if not hidden:
            return 0, 0
        gone = {names.stem(n) for n in discard}
        kept = {names.stem(n) for n in keep}
        by_stem: dict[str, list[str]] = {}
        for entry in hidden:
            found = names.leftover_stem(entry)
            if found is not None and (found in gone or found in kept):
                by_stem.setdefault(found, []).append(entry)
        removed = 0
        for stem, entries in by_stem.items():
            if stem in kept:
                continue
            # The record goes first, as in _discard: partial data with no
            # record is never trusted, a record naming lost data would be.
            entries.sort(key=lambda e: not e.endswith(names.SIDECAR_SUFFIX))
            for entry in entries:
                remove_quietly(os.path.join(local, entry))
            removed += 1
        if removed:
            fsync_dir(local)
        return removed, sum(1 for stem in by_stem if stem in kept)

    # -- namespace ---------------------------------------------------------------

    def list(self, path: str) -> Iterator[ObjectInfo]:
        local = self._paths.local(path)
        try:
            with os.scandir(local) as it:
                entries = sorted((e for e in it if not names.is_hidden(e.name)), key=lambda e: e.name)
        except OSError as exc:
            raise from_oserror(exc, f"cannot list {path}") from exc
        base = path.rstrip("/")
        out = []
        for entry in entries:
            full = os.path.join(local, entry.name)
            if self._paths.root is not None and entry.is_symlink():
                real = os.path.realpath(full)
                if not (real == self._paths.root or real.startswith(self._paths.root + "/")):
                    continue  # never reveal what lies outside the served tree
            try:
                st = os.stat(full)
            except OSError:
                continue  # a dangling link or a name removed meanwhile
            out.append(_info(f"{base}/{entry.name}", st))
        return iter(out)

    def scan(self, path: str) -> Iterator[ObjectInfo]:
        """The entries of a directory, unsorted, one at a time: links reported
        as links (never followed), special files flagged."""
        local = self._paths.local(path)
        base = path.rstrip("/")
        try:
            it = os.scandir(local)
        except OSError as exc:
            raise from_oserror(exc, f"cannot list {path}") from exc
        with it:
            for entry in it:
                if names.is_hidden(entry.name):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue  # removed meanwhile
                yield self._entry_info(f"{base}/{entry.name}", entry.path, st)

    def lstat(self, path: str) -> ObjectInfo:
        local = self._paths.local(path)
        try:
            st = os.lstat(local)
        except OSError as exc:
            raise from_oserror(exc, f"cannot stat {path}") from exc
        return self._entry_info(path, local, st)

    @staticmethod
    def _entry_info(path: str, local: str, st: os.stat_result) -> ObjectInfo:
        if stat_mod.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(local)
            except OSError as exc:
                raise from_oserror(exc, f"cannot read the link {path}") from exc
            return ObjectInfo(path=path, size=0, mtime_ns=st.st_mtime_ns, identity=f"{st.st_dev}:{st.st_ino}",
                              mode=stat_mod.S_IMODE(st.st_mode), link=target)
        info = _info(path, st)
        if not (stat_mod.S_ISREG(st.st_mode) or stat_mod.S_ISDIR(st.st_mode)):
            return ObjectInfo(path=path, size=0, mtime_ns=st.st_mtime_ns, identity=info.identity,
                              mode=info.mode, special=True)
        return info

    def symlink(self, path: str, target: str, *, mtime_ns: int | None = None) -> None:
        _local, directory, name = self._split(path)
        self._check_directory(directory, path)
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

    def hardlink(self, path: str, existing: str) -> None:
        _local, directory, name = self._split(path)
        self._check_directory(directory, path)
        source = self._paths.local(existing)
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

    def set_metadata(self, path: str, *, mode: int | None = None, mtime_ns: int | None = None) -> None:
        local = self._paths.local(path)
        try:
            if mode is not None and not os.path.islink(local):
                os.chmod(local, stat_mod.S_IMODE(mode))
            if mtime_ns is not None:
                os.utime(local, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
        except OSError as exc:
            raise from_oserror(exc, f"cannot set the permissions or time of {path}") from exc
        if os.path.islink(local):
            return  # a link cannot be synced alone: symlink(mtime_ns=...) sets it durably
        # The object's own inode: its sync makes the new attributes durable.
        fsync_inode(local, f"the attributes of {path}")

    def mkdir(self, path: str) -> None:
        local = self._paths.local(path)
        try:
            os.mkdir(local)
        except OSError as exc:
            raise from_oserror(exc, f"cannot create directory {path}") from exc
        fsync_dir(os.path.dirname(local))

    def mkdirs(self, paths: Sequence[str]) -> builtins.list[BaseException | None]:
        """Every directory created, then each parent synced once (a tree's
        directories share few parents): durable together on return."""
        results: builtins.list[BaseException | None] = []
        parents: dict[str, builtins.list[int]] = {}
        for i, path in enumerate(paths):
            try:
                local = self._paths.local(path)
                os.mkdir(local)
            except OSError as exc:
                results.append(from_oserror(exc, f"cannot create directory {path}"))
            except Exception as exc:  # noqa: BLE001 - reported per directory
                results.append(exc)
            else:
                results.append(None)
                parents.setdefault(os.path.dirname(local), []).append(i)
        for parent, created in parents.items():
            try:
                fsync_dir(parent)
            except Exception as exc:  # noqa: BLE001 - none of its new entries is known durable
                for i in created:
                    results[i] = exc
        return results

    def rmdir(self, path: str) -> None:
        local = self._paths.local(path)
        if local == self._paths.root:
            raise from_oserror(PermissionError(13, "the root cannot be removed"), f"cannot remove {path}")
        try:
            os.rmdir(local)
        except OSError as exc:
            raise from_oserror(exc, f"cannot remove directory {path}") from exc
        fsync_dir(os.path.dirname(local))

    def remove(self, path: str) -> None:
        local, directory, _name = self._split(path)
        if os.path.isdir(local) and not os.path.islink(local):
            raise IsADirectory(f"{path} is a directory; use rmdir", errno=21)
        try:
            os.unlink(local)
        except OSError as exc:
            raise from_oserror(exc, f"cannot remove {path}") from exc
        fsync_dir(directory)

    def rename(self, src: str, dst: str) -> None:
        src_local, src_dir, _ = self._split(src)
        dst_local, dst_dir, _ = self._split(dst)
        try:
            os.rename(src_local, dst_local)
        except OSError as exc:
            raise from_oserror(exc, f"cannot rename {src} to {dst}") from exc
        fsync_dir(dst_dir)
        if src_dir != dst_dir:
            fsync_dir(src_dir)


_UNSIZED = (
    "its size cannot be known before reading it to its end, so it cannot be copied by positional reads "
    "and nothing was written"
)
_UNSIZED_HINT = (
    "copy it with 'transfercore copy' from the command line, which reads such a source to its end first, "
    "or copy a regular file"
)


def _info(path: str, st: os.stat_result) -> ObjectInfo:
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
