"""One tree copy: walk, record, hand out tasks, record outcomes.

The runner (the client) alone writes the campaign journal.  Its order of
steps is what makes a rerun finish only what is missing:

1. the walk refreshes every entry's row (a file changed since an earlier
   run loses its ``complete`` state);
2. directories are created, then links;
3. files not complete are handed out in tasks; each is marked ``started``
   in the journal *before* it is handed out, so a rerun knows where partial
   state or an unrecorded published file may be;
4. a file is recorded ``complete`` only after its task returned, that is
   after its batch was verified, published and made durable;
5. directories get their permissions and times last, deepest first.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs

from ..contract import MetadataChange, ObjectInfo
from ..engine.options import TransferOptions
from ..errors import (
    AlreadyExists,
    CapabilityError,
    IsADirectory,
    LocationError,
    NoSpace,
    NotFound,
    TransferAborted,
    TransferCoreError,
)
from ..registry import Endpoint
from ..runlock import RunLock
from .attributes import copy_attributes
from .audit import Audit
from .events import (
    FileDeleted,
    FileDiffers,
    FileDone,
    FileFailed,
    FileRepaired,
    FileSkipped,
    TreeDone,
    TreeEvent,
    TreeProgress,
    TreeStarted,
    TreeWalking,
)
from .executor import Executor, LocalPool
from .mirror import Mirror
from .model import Entry, FileState, Kind, dst_facts
from .store import Campaign, CampaignStore, Outcome
from .tasks import (
    BatchTask,
    FileResult,
    FileSpec,
    LargeFileTask,
    RangedFileTask,
    VerifyTask,
    bytes_name_refused,
    endpoint,
)
from .walk import join, manifest_entries, walk

#: Seconds between progress events, and at most between journal commits of outcomes.
TICK = 0.5
#: Outcomes are committed to the journal (and then reported) at least this often, in seconds ...
COMMIT_EVERY = 0.2
#: ... or once this many are waiting.
COMMIT_FILES = 4096
#: Files marked ``started`` in the journal with one commit, ahead of being handed out.
STARTED_AHEAD = 4096
RATE_WINDOW = 5.0
#: Directories whose attributes are set, and made durable, together.
DIRECTORY_BATCH = 1000
#: Descriptors kept out of the batches' share of the open-file limit (the
#: journal, the standard streams, the drivers' own).
RESERVED_DESCRIPTORS = 64


def files_per_batch_open(workers: int) -> int | None:
    """The most files a batch may hold so that every worker's batch fits the
    process's open-file limit (``None``: no limit).

    A batch keeps each file's partial file open until the batch's durable
    point, and the POSIX batch copy a descriptor of each destination
    directory besides: two a file at most.  The command line raises its soft
    limit to 8,192; a program that runs a tree copy with the common default
    of 1,024 would otherwise see eight batches of 128 files fail some files
    with "Too many open files"."""
    try:
        import resource
    except ImportError:  # not a POSIX system
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    return max(1, (soft - RESERVED_DESCRIPTORS) // (2 * max(1, workers)))


@attrs.frozen
class TreeOptions:
    """How a tree copy runs."""

    #: Files in flight at once (worker threads of the local pool).
    files: int = 8
    #: Files up to this size are copied whole in batches; larger ones in blocks with markers.
    whole_file_max: int = 4 * 1024 * 1024
    #: Most files, and bytes, in one batch (one durable point).
    batch_files: int = 128
    batch_bytes: int = 64 * 1024 * 1024
    #: Options of the transfers of large files (their checksum is the tree's).
    transfer: TransferOptions = attrs.field(factory=TransferOptions)
    #: Deep verification: every file recorded complete is read back from the
    #: destination and compared by checksum with the source; differences are copied again.
    verify: bool = False
    #: Devices, FIFOs and sockets in the source are expected (a run that skipped them still succeeded).
    skip_specials: bool = False
    #: After a fully successful copy, remove what the destination holds and the source lacks.
    delete: bool = False
    #: Keep extended attributes (ACLs included) and owners/groups, between local file systems.
    xattrs: bool = False
    owners: bool = False
    #: Keep hard links: the other names of a file are linked to its first, not copied.
    hard_links: bool = False
    #: Files at least this large are cut into ranges of ``range_size``, each
    #: copied by its own writer (where the destination can); 0 never.
    ranges_above: int = 0
    range_size: int = 256 * 1024 * 1024

    @property
    def extras(self) -> tuple[bool, bool]:
        return (self.xattrs, self.owners)

    @property
    def checksum(self) -> str | None:
        return self.transfer.checksum

    def to_dict(self) -> dict[str, Any]:
        return {"files": self.files, "whole_file_max": self.whole_file_max, "verify": self.verify,
                "delete": self.delete, "skip_specials": self.skip_specials, "xattrs": self.xattrs,
                "owners": self.owners, "hard_links": self.hard_links,
                **self.transfer.to_dict()}


@attrs.frozen
class TreeResult:
    campaign: int
    files: int
    bytes: int
    copied: int
    bytes_written: int
    kept: int
    failed: list[tuple[str, str]]
    skipped: int
    elapsed: float
    #: Entries recorded complete that the destination no longer held as published.
    repaired: int = 0
    #: Leftover partial objects of a dead run removed, and kept to be resumed.
    partials_removed: int = 0
    partials_resumed: int = 0
    #: Source entries not copied (devices, FIFOs, sockets), with why (the first thousand).
    skipped_paths: list[tuple[str, str]] = attrs.field(factory=list)
    #: With ``verify``: files read back and found equal, and found different (copied again).
    verified: int = 0
    differed: int = 0
    #: With ``delete``: destination entries removed because the source lacks them.
    deleted: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed


#: Errors (by name, as results carry them across processes) that mean the
#: destination has no room left for any file.
_NO_SPACE = frozenset({"NoSpace", "QuotaExceeded"})


def _url(e: Endpoint) -> str:
    return str(attrs.evolve(e.location, options=()))


class TreeCopy:
    """Copy the tree at ``source`` into ``destination`` (created if missing;
    merged into if it exists).  With ``manifest``, only the listed paths."""

    def __init__(
        self,
        source: str,
        destination: str,
        options: TreeOptions,
        store: CampaignStore,
        *,
        manifest: Iterable[str] | None = None,
        manifest_name: str = "",
        executor: Executor | None = None,
    ) -> None:
        self.source_url = source
        self.destination_url = destination
        self.options = options
        self.store = store
        self.manifest = manifest
        self.manifest_name = manifest_name
        self.executor = executor
        self._listeners: list[Any] = []
        #: The listeners given a ``file-done`` event per file (a subset of the above).
        self._file_listeners: list[Any] = []
        self._cancel = threading.Event()
        self.skipped = 0
        #: The first thousand entries not copied, with why.
        self.skipped_paths: list[tuple[str, str]] = []
        #: Every entry skipped: ``--delete`` leaves the destination's namesakes alone.
        self._skipped_rels: set[str] = set()
        #: Files copied one per task (large ones) and complete, this run.
        self._singles_done: list[str] = []

    def add_listener(self, listener: Any, *, files: bool = True) -> None:
        """Call ``listener`` with every event of the copy.  With ``files=False``
        it is not given the ``file-done`` event of each file (progress, errors
        and the summary still come): a tree of small files then makes no event
        object a file when no listener wants one."""
        self._listeners.append(listener)
        if files:
            self._file_listeners.append(listener)

    def _emit(self, event: TreeEvent) -> None:
        for listener in self._file_listeners if type(event) is FileDone else self._listeners:
            listener(event)

    def cancel(self) -> None:
        """Stop soon from any thread (e.g. a signal handler); :meth:`run` then
        raises :class:`TransferAborted` with every finished file recorded."""
        self._cancel.set()

    # -- the run -------------------------------------------------------------------------

    def run(self) -> TreeResult:
        started = time.monotonic()
        src = endpoint(self.source_url)
        dst = endpoint(self.destination_url)
        created = self._check_roots(src, dst)
        # One run per destination tree: two would hand out the same files.
        lock = RunLock.acquire(self.store.lock_path(_url(dst)), source=_url(src), destination=_url(dst))
        try:
            return self._run(src, dst, started, created)
        finally:
            lock.release()

    def _run(self, src: Endpoint, dst: Endpoint, started: float, created_root: bool = False) -> TreeResult:
        campaign = self.store.open_campaign(_url(src), _url(dst), self.manifest_name, self.options.to_dict())
        self.store.record_walk(campaign, self._walking(campaign, self._entries(src), started))
        if not self.options.transfer.resume:
            self.store.reopen(campaign)
        # The destination, not the journal, says what is there.
        checked = Audit(self.store, campaign, dst.driver, dst.path, whole_file_max=self.options.whole_file_max,
                        clear_in_the_way=self._clear_in_the_way(dst), created_root=created_root).run()
        for rel in checked.repaired_paths:
            self._emit(FileRepaired(rel))
        for rel, message in checked.failures:
            self._emit(FileFailed(rel, "AlreadyExists", message, ""))
        counts = self.store.counts(campaign)
        done_files = counts.files.get(FileState.COMPLETE.value, 0)
        done_bytes = counts.bytes.get(FileState.COMPLETE.value, 0)
        self._emit(TreeStarted(campaign.id, _url(src), _url(dst), counts.total_files, counts.total_bytes,
                               counts.dirs, counts.links, done_files, done_bytes))
        failures: list[tuple[str, str]] = list(checked.failures)
        state = _Progress(self, counts.total_files, counts.total_bytes, done_files, done_bytes, started)
        own = self.executor is None
        executor: Executor = self.executor or LocalPool(self.options.files)
        try:
            if self.options.verify:
                failures += self._verify(campaign, executor, state)
            failures += self._directories(campaign, dst)
            failures += self._links(campaign, src, dst)
            failures += self._files(campaign, executor, state)
            if self.executor is not None:
                self._sweep_after_workers(dst)
            failures += self._hardlinks(campaign, dst)
            failures += self._directory_metadata(campaign, src, dst)
        except BaseException as exc:
            executor.cancel()  # running tasks stop at their next step instead of running on
            self.store.finish(campaign, "interrupted" if isinstance(exc, (KeyboardInterrupt, TransferAborted))
                              else "failed", str(exc))
            raise
        finally:
            if own:
                executor.shutdown()
        deleted, not_deleted = self._mirror(campaign, dst, failures)
        failures += not_deleted
        elapsed = time.monotonic() - started
        self.store.finish(campaign, "failed" if failures else "done",
                          f"{len(failures)} entries failed" if failures else "")
        final = self.store.counts(campaign)
        # Complete now and not written by this run (found intact, or proven equal).
        kept = final.files.get(FileState.COMPLETE.value, 0) - state.copied
        self._emit(TreeDone(final.total_files, final.total_bytes, state.copied, state.written,
                            kept, len(failures), final.dirs, final.links, self.skipped,
                            elapsed, [rel for rel, _ in failures[:1000]], repaired=checked.repaired,
                            partials_removed=checked.partials_removed, partials_resumed=checked.partials_resumed,
                            verified=state.verified, differed=state.differed, deleted=deleted))
        return TreeResult(campaign.id, final.total_files, final.total_bytes, state.copied, state.written,
                          kept, failures, self.skipped, elapsed, repaired=checked.repaired,
                          partials_removed=checked.partials_removed, partials_resumed=checked.partials_resumed,
                          skipped_paths=self.skipped_paths, verified=state.verified, differed=state.differed,
                          deleted=deleted)

    def _mirror(self, campaign: Campaign, dst: Endpoint, failures: list[tuple[str, str]]) -> tuple[int, list[tuple[str, str]]]:
        if not self.options.delete:
            return 0, []
        if failures or (self.skipped and not self.options.skip_specials):
            # Never on a failed run: what the source "lacks" may only have failed to be read.
            self._emit(FileSkipped(".", "--delete not done: the copy did not fully succeed"))
            return 0, []
        mirror = Mirror(self.store, campaign, dst.driver, dst.path, self._skipped_rels,
                        lambda rel: self._emit(FileDeleted(rel)))
        return mirror.run(), mirror.failures

    def _clear_in_the_way(self, dst: Endpoint) -> Callable[[str, ObjectInfo], str | None]:
        """What stands where the campaign had published an entry of another
        kind is replaced, as the source says: a file or link in the way of a
        directory, an empty directory in the way of a file or link."""

        def clear(path: str, found: ObjectInfo) -> str | None:
            try:
                if found.is_dir and found.link is None:
                    dst.driver.rmdir(path)
                else:
                    dst.driver.remove(path)
            except TransferCoreError as exc:
                what = "a directory" if found.is_dir else "an entry of another kind"
                return f"{what} stands where the copy belongs and cannot be removed: {exc}; move it away"
            return None

        return clear

    def _check_roots(self, src: Endpoint, dst: Endpoint) -> bool:
        """Refuse roots that cannot be copied; True when the destination root was created now."""
        try:
            info = src.driver.stat(src.path)
        except NotFound:
            raise NotFound(f"source {_url(src)} does not exist", hint="check the source path") from None
        if not info.is_dir:
            raise LocationError(f"source {_url(src)} is not a directory",
                                hint="copy a single file without -r")
        if src.location.driver == dst.location.driver and src.location.authority == dst.location.authority:
            a, b = src.path.rstrip("/") + "/", dst.path.rstrip("/") + "/"
            if b.startswith(a) or a.startswith(b):
                raise LocationError(f"destination {_url(dst)} overlaps the source {_url(src)}",
                                    hint="give a destination outside the source tree")
        try:
            existing = dst.driver.lstat(dst.path)
        except NotFound:
            dst.driver.mkdir(dst.path)
            return True
        if not existing.is_dir or existing.link is not None:
            raise IsADirectory(f"destination {_url(dst)} exists and is not a directory",
                               hint="give a directory, or a path that does not exist yet")
        return False

    def _skip(self, rel: str, reason: str) -> None:
        self.skipped += 1
        if len(self.skipped_paths) < 1000:
            self.skipped_paths.append((rel, reason))
        self._skipped_rels.add(rel)
        self._emit(FileSkipped(rel, reason))

    def _entries(self, src: Endpoint) -> Iterator[Entry]:
        if self.manifest is not None:
            return manifest_entries(src.driver, src.path, self.manifest, self._skip, self.manifest_name or "manifest")
        return walk(src.driver, src.path, self._skip, hard_links=self.options.hard_links)

    def _walking(self, campaign: Campaign, entries: Iterable[Entry], started: float) -> Iterator[Entry]:
        """``entries``, saying every :data:`TICK` how far the walk has come (:class:`TreeWalking`)."""
        count = files = size = 0
        due = time.monotonic() + TICK
        for entry in entries:
            yield entry
            count += 1
            if entry.kind is Kind.FILE:
                files += 1
                size += entry.size
            if count % 256 == 0:  # (the clock read once in a while, not per entry)
                now = time.monotonic()
                if now >= due:
                    due = now + TICK
                    self._emit(TreeWalking(campaign.id, count, files, size, now - started))

    def _directories(self, campaign: Campaign, dst: Endpoint) -> list[tuple[str, str]]:
        failures: list[tuple[str, str]] = []
        outcomes: list[Outcome] = []
        create: list[str] = []

        def failed(rel: str, caught: BaseException) -> None:
            exc = bytes_name_refused(caught) if isinstance(caught, UnicodeError) else caught
            failures.append((rel, str(exc)))
            outcomes.append(Outcome(rel, FileState.FAILED, message=str(exc)))
            self._emit(FileFailed(rel, type(exc).__name__, str(exc), ""))

        def flush() -> None:
            # Created together, durable together (Driver.mkdirs), parents first.
            made = dst.driver.mkdirs([join(dst.path, rel) for rel in create]) if create else []
            for rel, error in zip(create, made, strict=True):
                if error is None:
                    outcomes.append(Outcome(rel, FileState.COMPLETE))
                else:
                    failed(rel, error)
            create.clear()
            self.store.record(campaign, outcomes)
            outcomes.clear()

        for record in self.store.records(campaign, kinds=(Kind.DIR,), unfinished=True):
            path = join(dst.path, record.entry.rel)
            try:
                try:
                    info = dst.driver.lstat(path)
                except NotFound:
                    create.append(record.entry.rel)
                else:
                    if not info.is_dir or info.link is not None:
                        raise AlreadyExists(f"{path} exists at the destination and is not a directory",
                                            hint="move it away, then run the same command again")
                    outcomes.append(Outcome(record.entry.rel, FileState.COMPLETE))
            except (TransferCoreError, UnicodeError) as caught:
                failed(record.entry.rel, caught)
            if len(outcomes) + len(create) >= 1000:
                flush()
        flush()
        return failures

    def _links(self, campaign: Campaign, src: Endpoint, dst: Endpoint) -> list[tuple[str, str]]:
        failures: list[tuple[str, str]] = []
        outcomes: list[Outcome] = []
        for record in self.store.records(campaign, kinds=(Kind.LINK,), unfinished=True):
            entry = record.entry
            path = join(dst.path, entry.rel)
            try:
                assert entry.link is not None
                dst.driver.symlink(path, entry.link, mtime_ns=entry.mtime_ns)
                if self.options.owners:
                    copy_attributes(src, join(src.path, entry.rel), dst, path, xattrs=False, owners=True)
            except (TransferCoreError, UnicodeError) as caught:
                exc = bytes_name_refused(caught) if isinstance(caught, UnicodeError) else caught
                failures.append((entry.rel, str(exc)))
                outcomes.append(Outcome(entry.rel, FileState.FAILED, message=str(exc)))
                self._emit(FileFailed(entry.rel, type(exc).__name__, str(exc), ""))
            else:
                outcomes.append(Outcome(entry.rel, FileState.COMPLETE))
        self.store.record(campaign, outcomes)
        return failures

    def _hardlinks(self, campaign: Campaign, dst: Endpoint) -> list[tuple[str, str]]:
        """The other names of files with several, linked to the first name
        once that is complete.  Every name of such a file is then recorded
        without the version of its facts, which each new name moves."""
        failures: list[tuple[str, str]] = []
        outcomes: list[Outcome] = []
        targets: dict[str, list[str]] = {}
        for record in self.store.records(campaign, kinds=(Kind.HARDLINK,)):
            e = record.entry
            assert e.link is not None
            try:
                if record.state is FileState.COMPLETE and self._still_linked(dst, e.rel, e.link):
                    continue
                first = self.store.record_of(campaign, e.link)
                if first is None or first.state is not FileState.COMPLETE:
                    raise TransferCoreError(f"not linked: its first name {e.link} was not copied",
                                            hint="run the same command again once that file is copied")
                dst.driver.hardlink(join(dst.path, e.rel), join(dst.path, e.link))
            except (TransferCoreError, UnicodeError) as caught:
                exc = bytes_name_refused(caught) if isinstance(caught, UnicodeError) else caught
                failures.append((e.rel, str(exc)))
                outcomes.append(Outcome(e.rel, FileState.FAILED, message=str(exc)))
                self._emit(FileFailed(e.rel, type(exc).__name__, str(exc), ""))
            else:
                targets.setdefault(e.link, []).append(e.rel)
        self.store.record(campaign, outcomes)
        done: list[tuple[str, str]] = []
        for target, names in targets.items():
            facts = dst_facts(dst.driver.lstat(join(dst.path, target)), version=False)
            done += [(rel, facts) for rel in [target, *names]]
        self.store.complete_with_facts(campaign, done)
        return failures

    @staticmethod
    def _still_linked(dst: Endpoint, rel: str, target: str) -> bool:
        # The first name may have been copied again since (a repair): its
        # other names must then be linked to the new object.
        try:
            a, b = dst.driver.lstat(join(dst.path, rel)), dst.driver.lstat(join(dst.path, target))
        except TransferCoreError:
            return False
        return bool(a.identity) and a.identity == b.identity

    def _tasks(self, campaign: Campaign, pending_files: int) -> Iterator[tuple[Any, list[FileSpec]]]:
        """Tasks for the files not complete, in path order, built lazily."""
        opts = self.options
        # Enough batches to keep every worker busy, each as large as allowed.
        per_batch = max(1, min(opts.batch_files, math.ceil(pending_files / max(1, 2 * opts.files))))
        if self.executor is None:  # (a cluster's workers run under their own limits)
            per_batch = min(per_batch, files_per_batch_open(opts.files) or per_batch)
        batch: list[FileSpec] = []
        batch_bytes = 0
        pending = FileState.PENDING
        for rel, size, mtime_ns, mode, identity, state in self.store.unfinished_files(campaign):
            spec = FileSpec(rel, size, mtime_ns, mode, identity, started=state is not pending)
            if size > opts.whole_file_max and opts.ranges_above and size >= opts.ranges_above:
                yield RangedFileTask(self.source_url, self.destination_url, spec, opts.transfer, opts.extras,
                                     range_size=opts.range_size), [spec]
                continue
            if size > opts.whole_file_max:
                yield LargeFileTask(self.source_url, self.destination_url, spec, opts.transfer, opts.extras), [spec]
                continue
            batch.append(spec)
            batch_bytes += size
            if len(batch) >= per_batch or batch_bytes >= opts.batch_bytes:
                yield BatchTask(self.source_url, self.destination_url, tuple(batch), opts.checksum, opts.extras), batch
                batch, batch_bytes = [], 0
        if batch:
            yield BatchTask(self.source_url, self.destination_url, tuple(batch), opts.checksum, opts.extras), batch

    def _files(self, campaign: Campaign, executor: Executor, progress: _Progress) -> list[tuple[str, str]]:
        """Hand out the tasks and record their outcomes.

        Two journal commits gate the work, both kept few: files are marked
        ``started`` a stretch ahead of being handed out (one commit for up to
        :data:`STARTED_AHEAD` files: a file marked too early only makes a
        rerun check whether it is published), and outcomes are committed in
        groups that close on time (:data:`COMMIT_EVERY`) and count
        (:data:`COMMIT_FILES`), each group's events emitted only after its
        commit.  Each commit waits for the disk, so one per returned task
        would hold back the tasks waiting to be handed out."""
        counts = self.store.counts(campaign)
        pending = counts.total_files - counts.files.get(FileState.COMPLETE.value, 0)
        source = self._tasks(campaign, pending)
        ready: collections.deque[tuple[Any, list[FileSpec]]] = collections.deque()
        inflight: dict[Any, list[FileSpec]] = {}
        window = 2 * self.options.files
        outcomes: list[Outcome] = []
        #: (rel, checksum, destination facts) of files complete with nothing more to say.
        complete: list[tuple[str, str, str]] = []
        per_file = bool(self._file_listeners)
        events: list[TreeEvent] = []
        failures: list[tuple[str, str]] = []
        exhausted = False
        interrupted: BaseException | None = None
        #: The first file the destination had no room for, and how many more
        #: met the same full storage: one cause, said once.
        full: FileResult | None = None
        full_count = 0
        last_commit = time.monotonic()
        while True:
            try:
                if interrupted is None and not self._cancel.is_set():
                    if not ready and not exhausted:
                        exhausted = self._mark_ahead(campaign, source, ready)
                    while ready and len(inflight) < window:
                        task, specs = ready.popleft()
                        inflight[executor.submit(task)] = specs
                        if not ready and not exhausted:
                            exhausted = self._mark_ahead(campaign, source, ready)
                if self._cancel.is_set() and interrupted is None:
                    interrupted = TransferAborted("the copy was cancelled", hint="run the same command again to resume")
                    executor.cancel()
                if not inflight:
                    break
                waiting = outcomes or complete
                timeout = max(0.0, last_commit + COMMIT_EVERY - time.monotonic()) if waiting else TICK
                done, _ = executor.wait(list(inflight), timeout)
            except KeyboardInterrupt as exc:
                if interrupted is None:
                    interrupted = exc
                    executor.cancel()
                continue
            for future in done:
                specs = inflight.pop(future)
                # (a file above whole_file_max has a task of its own: see _tasks)
                single = len(specs) == 1 and specs[0].size > self.options.whole_file_max
                try:
                    result = future.result()
                except Exception as exc:  # noqa: BLE001 - a task that failed as a whole
                    results = [FileResult(s.rel, FileState.FAILED, s.size, error=type(exc).__name__,
                                          message=str(exc)) for s in specs]
                else:
                    results = result if isinstance(result, list) else [result]
                for r in results:
                    if r.state is FileState.COMPLETE:
                        # (most files of a tree: a tuple each, not an Outcome and an event)
                        if r.marker or r.message:
                            outcomes.append(Outcome(r.rel, r.state, r.checksum, r.marker, r.message, r.dst))
                        else:
                            complete.append((r.rel, r.checksum, r.dst))
                        progress.file_done(r)
                        if per_file:
                            events.append(FileDone(r.rel, r.size, r.written, r.checksum, r.reused))
                        if single:
                            self._singles_done.append(r.rel)
                        continue
                    outcomes.append(Outcome(r.rel, r.state, r.checksum, r.marker, r.message, r.dst))
                    if r.error in _NO_SPACE:
                        # Every later file would fail the same way: stop handing
                        # them out, and report the cause once.
                        full_count += 1
                        progress.failed += 1
                        if full is None:
                            full = r
                            if interrupted is None:
                                interrupted = NoSpace("the destination is full")
                                executor.cancel()
                    elif r.state is not FileState.STARTED or interrupted is None:
                        failures.append((r.rel, r.message))
                        progress.failed += 1
                        events.append(FileFailed(r.rel, r.error, r.message, r.marker))
            now = time.monotonic()
            count = len(outcomes) + len(complete)
            if count and (now >= last_commit + COMMIT_EVERY or count >= COMMIT_FILES or not inflight):
                # Recorded before reported: a file reported done is in the
                # journal as complete (one commit for the whole group).
                self.store.record(campaign, outcomes, complete)
                outcomes, complete = [], []
                last_commit = now
                for event in events:
                    self._emit(event)
                events = []
            progress.tick(now)
        self.store.record(campaign, outcomes, complete)
        for event in events:
            self._emit(event)
        progress.tick(time.monotonic(), force=True)
        if full is not None:
            raise NoSpace(
                f"the destination is full: {full_count} file{'s' if full_count != 1 else ''} could not be "
                f"written, the first {full.rel}: {full.message.split('; ')[0]}",
                hint="free space on the storage (or raise the quota), then run the same command again: "
                     "what is complete is kept and large files resume from their durable marker",
            )
        if interrupted is not None:
            if isinstance(interrupted, KeyboardInterrupt):
                raise TransferAborted("the copy was interrupted", hint="run the same command again to resume")
            raise interrupted
        return failures

    def _sweep_after_workers(self, dst: Endpoint) -> None:
        """Remove what a dead worker left of the large files this run completed.

        A worker process that dies while it writes a large file may leave its
        partial file where the task's retry, in another process, does not look:
        that process lists a directory once a while for earlier partial files,
        and its listing may predate the dead worker's.  The file is then
        published from the retry's own partial file and the other stays, hidden,
        until the next run's destination check.  Each directory of this run's
        large files is listed once more here, and the leftovers of those files
        removed.  Best effort: the files are complete; a failure only leaves
        the leftover for the next run."""
        by_directory: dict[str, set[str]] = {}
        for rel in self._singles_done:
            parent, _, name = rel.rpartition("/")
            by_directory.setdefault(parent, set()).add(name)
        self._singles_done = []
        for parent, names in sorted(by_directory.items()):
            try:
                dst.driver.sweep_partials(join(dst.path, parent) if parent else dst.path, names)
            except (TransferCoreError, OSError):
                continue

    def _mark_ahead(self, campaign: Campaign, source: Iterator[tuple[Any, list[FileSpec]]],
                    ready: collections.deque[tuple[Any, list[FileSpec]]]) -> bool:
        """Take tasks for up to :data:`STARTED_AHEAD` files from ``source``
        into ``ready``, their files durably marked ``started`` (one commit)
        before any worker may create partial state; True once ``source`` is done."""
        files = 0
        exhausted = False
        fresh: list[tuple[Any, list[FileSpec]]] = []
        while files < STARTED_AHEAD:
            item = next(source, None)
            if item is None:
                exhausted = True
                break
            fresh.append(item)
            files += len(item[1])
        if fresh:
            # The tasks come in path order and cover every unfinished file
            # between their first and last: one range marks them all.
            self.store.mark_started_between(campaign, fresh[0][1][0].rel, fresh[-1][1][-1].rel)
            ready.extend(fresh)
        return exhausted

    def _verify_tasks(self, campaign: Campaign) -> Iterator[tuple[Any, list[FileSpec]]]:
        opts = self.options
        algorithm = opts.checksum or "crc32c"
        batch: list[FileSpec] = []
        size = 0
        for record in self.store.records(campaign, kinds=(Kind.FILE,)):
            if record.state is not FileState.COMPLETE:
                continue
            e = record.entry
            batch.append(FileSpec(e.rel, e.size, e.mtime_ns, e.mode, e.identity))
            size += e.size
            if len(batch) >= opts.batch_files or size >= opts.batch_bytes:
                yield VerifyTask(self.source_url, self.destination_url, tuple(batch), algorithm), batch
                batch, size = [], 0
        if batch:
            yield VerifyTask(self.source_url, self.destination_url, tuple(batch), algorithm), batch

    def _verify(self, campaign: Campaign, executor: Executor, progress: _Progress) -> list[tuple[str, str]]:
        """Read back every file recorded complete and compare it with the
        source; what differs goes back to ``pending`` for the copy below."""
        source = self._verify_tasks(campaign)
        inflight: dict[Any, list[FileSpec]] = {}
        failures: list[tuple[str, str]] = []
        exhausted = False
        while True:
            while not exhausted and not self._cancel.is_set() and len(inflight) < 2 * self.options.files:
                item = next(source, None)
                if item is None:
                    exhausted = True
                    break
                inflight[executor.submit(item[0])] = item[1]
            if self._cancel.is_set():
                executor.cancel()
            if not inflight:
                break
            done, _ = executor.wait(list(inflight), TICK)
            changes: list[tuple[str, FileState]] = []
            outcomes: list[Outcome] = []
            events: list[TreeEvent] = []
            for future in done:
                specs = inflight.pop(future)
                try:
                    results = future.result()
                except Exception as exc:  # noqa: BLE001 - a task that failed as a whole
                    results = [FileResult(s.rel, FileState.FAILED, s.size, error=type(exc).__name__,
                                          message=str(exc)) for s in specs]
                for r in results:
                    if r.state is FileState.PENDING:
                        progress.differed += 1
                        changes.append((r.rel, FileState.PENDING))
                        events.append(FileDiffers(r.rel, r.message))
                    elif r.state is FileState.FAILED:
                        failures.append((r.rel, r.message))
                        outcomes.append(Outcome(r.rel, FileState.FAILED, message=r.message))
                        events.append(FileFailed(r.rel, r.error, r.message, ""))
                    elif not r.message:
                        progress.verified += 1
            self.store.set_states(campaign, changes)
            self.store.record(campaign, outcomes)
            for event in events:
                self._emit(event)
        if self._cancel.is_set():
            raise TransferAborted("the copy was cancelled", hint="run the same command again to resume")
        return failures

    def _directory_metadata(self, campaign: Campaign, src: Endpoint, dst: Endpoint) -> list[tuple[str, str]]:
        failures: list[tuple[str, str]] = []
        changes: list[tuple[str, MetadataChange]] = []

        def apply() -> bool:
            """Set the collected changes, durable together; False when the storage keeps none."""
            results = dst.driver.set_metadata_many([change for _rel, change in changes])
            for (rel, _change), error in zip(changes, results, strict=True):
                if isinstance(error, CapabilityError):
                    # Storage that keeps no directory attributes: the tree is
                    # still whole, so say it once rather than fail every directory.
                    self._emit(FileSkipped(".", f"directory permissions and times not kept: {error}"))
                    return False
                if error is not None:
                    failures.append((rel, str(error)))
                    self._emit(FileFailed(rel, type(error).__name__, str(error), ""))
            changes.clear()
            return True

        for record in self.store.records(campaign, kinds=(Kind.DIR,), descending=True):
            if record.state is not FileState.COMPLETE:
                continue
            e = record.entry
            path = join(dst.path, e.rel)
            try:
                if any(self.options.extras):
                    copy_attributes(src, join(src.path, e.rel), dst, path, xattrs=self.options.xattrs,
                                    owners=self.options.owners)
                now = dst.driver.lstat(path)
            except CapabilityError as exc:
                self._emit(FileSkipped(".", f"directory permissions and times not kept: {exc}"))
                return failures
            except TransferCoreError as exc:
                failures.append((e.rel, str(exc)))
                self._emit(FileFailed(e.rel, type(exc).__name__, str(exc), ""))
                continue
            if _same_attributes(now, e.mode, e.mtime_ns):
                continue  # already right: a rerun of an intact tree writes nothing
            changes.append((e.rel, MetadataChange(path, mode=e.mode, mtime_ns=e.mtime_ns)))
            if len(changes) >= DIRECTORY_BATCH and not apply():
                return failures
        if self.manifest is None:
            # The root last, in the same durable step as the directories below it.
            info = src.driver.stat(src.path)
            try:
                if any(self.options.extras):
                    copy_attributes(src, src.path, dst, dst.path, xattrs=self.options.xattrs,
                                    owners=self.options.owners)
                now = dst.driver.lstat(dst.path)
            except CapabilityError as exc:
                self._emit(FileSkipped(".", f"directory permissions and times not kept: {exc}"))
                return failures
            except TransferCoreError as exc:
                failures.append((".", str(exc)))
            else:
                if not _same_attributes(now, info.mode, info.mtime_ns):
                    changes.append((".", MetadataChange(dst.path, mode=info.mode, mtime_ns=info.mtime_ns)))
        if changes:
            apply()
        return failures


def _same_attributes(now: ObjectInfo, mode: int, mtime_ns: int) -> bool:
    """Whether a destination directory already has these permission bits and
    time, at the destination's resolution (HPSS keeps whole seconds)."""
    if now.mode != mode & 0o7777:
        return False
    return now.mtime_ns == mtime_ns or (now.mtime_ns % 1_000_000_000 == 0
                                        and now.mtime_ns == mtime_ns - mtime_ns % 1_000_000_000)


class _Progress:
    def __init__(self, run: TreeCopy, files: int, size: int, done_files: int, done_bytes: int, started: float) -> None:
        self.run = run
        self.files = files
        self.size = size
        self.done_files = done_files
        self.done_bytes = done_bytes
        self.started = started
        self.copied = 0
        self.kept = 0
        self.verified = 0
        self.differed = 0
        self.written = 0
        self.failed = 0
        self._next = started + TICK
        self._samples: collections.deque[tuple[float, int]] = collections.deque([(started, done_bytes)])

    def file_done(self, r: FileResult) -> None:
        self.done_files += 1
        self.done_bytes += r.size
        if r.reused:
            self.kept += 1
        else:
            self.copied += 1
        self.written += r.written

    def tick(self, now: float, *, force: bool = False) -> None:
        if now < self._next and not force:
            return
        self._next = now + TICK
        self._samples.append((now, self.done_bytes))
        while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW:
            self._samples.popleft()
        t0, b0 = self._samples[0]
        rate = (self.done_bytes - b0) / (now - t0) if now > t0 else 0.0
        eta = (self.size - self.done_bytes) / rate if rate > 0 else None
        self.run._emit(TreeProgress(self.done_files, self.files, self.done_bytes, self.size, self.failed,
                                    now - self.started, rate, eta))
