"""Publishing a batch of objects (a tree copy) with one durable point.

Every file is synced (concurrently, or by one ``syncfs`` of the file
system where that reaches the device), verified, renamed to its final
name, then each directory is synced once; only then is any object of the
batch reported as published.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from transfercore.contract import Writer
from transfercore.driverkit import fsync_dir, fsync_inode
from transfercore.errors import from_oserror

from .fsutil import SYNCFS_DURABLE, fs_type, syncfs
from .writer import PosixWriter

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


class BatchSync:
    """One driver's batch publishing; ``mode`` is its ``batch_sync`` option (fsync, syncfs, auto)."""

    def __init__(self, mode: str) -> None:
        self._mode = mode
        self._pool_lock = threading.Lock()
        self._sync_pool: ThreadPoolExecutor | None = None
        #: Whether syncfs reaches the media, by directory (asked once each).
        self._fs_types: dict[str, bool] = {}

    def complete(
        self, batch: Sequence[PosixWriter], verify: Callable[[Writer], None] | None
    ) -> list[BaseException | None]:
        """``Driver.complete_batch`` for POSIX writers."""
        results: list[BaseException | None] = [None] * len(batch)

        def sync(writer: PosixWriter) -> BaseException | None:
            try:
                writer.sync_for_batch()
            except Exception as exc:  # noqa: BLE001 - reported per object
                return exc
            return None

        if len(batch) > 1 and self.uses_syncfs(batch[0].directory, len(batch)):
            synced = _sync_by_syncfs(batch)
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
        # Together: one sync after the other, each directory cost a journal commit.
        ordered = sorted(directories)
        failed_dirs = {d: error for d, error in zip(ordered, self.sync_inodes(ordered, "directory"), strict=True)
                       if error is not None}
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

    def sync_inodes(self, paths: Sequence[str], what: str) -> list[BaseException | None]:
        """Make many inodes (directories, or files whose attributes changed;
        never a link) durable together: one entry per path, ``None`` or the
        error.  A tree's directories are hundreds of inodes: synced one after
        the other they cost one journal commit each, together about one."""
        results: list[BaseException | None] = [None] * len(paths)
        separately: list[int] = []
        if len(paths) > 1 and self._mode != "fsync":
            devices: dict[int, list[int]] = {}
            for i, path in enumerate(paths):
                try:
                    devices.setdefault(os.lstat(path).st_dev, []).append(i)
                except OSError as exc:
                    results[i] = from_oserror(exc, f"cannot sync {what} {path}")
            for members in devices.values():
                first = paths[members[0]]
                if not self.uses_syncfs(first, len(members)):
                    separately += members
                    continue
                error: BaseException | None = None
                try:
                    fd = os.open(first, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                except OSError as exc:
                    error = from_oserror(exc, f"cannot sync {what} {first}")
                else:
                    try:
                        syncfs(fd, f"cannot sync {what} {first} and {len(members) - 1} more")
                    except Exception as exc:  # noqa: BLE001 - none of them is known durable
                        error = exc
                    finally:
                        os.close(fd)
                if error is not None:
                    for i in members:
                        results[i] = error
        else:
            separately = list(range(len(paths)))

        def sync(i: int) -> BaseException | None:
            try:
                fsync_inode(paths[i], f"{what} {paths[i]}")
            except Exception as exc:  # noqa: BLE001 - reported per path
                return exc
            return None

        synced = self._pool().map(sync, separately) if len(separately) > 1 else map(sync, separately)
        for i, error in zip(separately, synced, strict=True):
            results[i] = error
        return results

    def uses_syncfs(self, directory: str, count: int | None = None) -> bool:
        """Whether a batch (of ``count`` objects; ``None``: a tree copy's) in ``directory`` is made
        durable by one syncfs."""
        mode = self._mode
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


def _sync_by_syncfs(batch: Sequence[PosixWriter]) -> list[BaseException | None]:
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
