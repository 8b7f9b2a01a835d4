"""Before a rerun hands out any work: what the destination holds now.

The journal says what a campaign published; only the destination says what
is still there.  Every entry recorded complete is checked against one
listing of its destination directory (``Driver.scan``: one call per
directory, never one per file), and it stays complete only while the
destination still shows what was recorded when it was published: size,
modification time, the driver's object identity and version (POSIX: device,
inode and change time, which nobody can put back).  Anything missing or
changed goes back to be copied (or, for a file that may merely have been
touched, proven equal by its checksum); a directory that vanished is
created again.

The same pass clears what a dead run left: partial objects of the
driver's own naming in the campaign's directories are removed, except
those of large files still unfinished, which the next task resumes from the
driver's durable record.  Small files that were handed out but are absent
at the destination then have no partial state left, so they go back to
``pending`` and cost their task no further look at the destination.

Directories are visited in path order with a stack of listings, one per
level of the directory being checked, so memory stays at the listings of
one path from the root, as in the walk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import attrs

from ..contract import Driver, ObjectInfo
from ..errors import NotADirectory, NotFound
from .model import FileState, Kind, Record, facts_match
from .store import Campaign, CampaignStore, Outcome
from .walk import join

#: Rows per journal transaction while states are changed.
BATCH = 2000


@attrs.frozen
class AuditResult:
    #: Entries recorded complete that were missing or changed at the destination.
    repaired: int
    #: Objects whose leftover partial state was removed.
    partials_removed: int
    #: Large files whose partial state was kept for their task to resume.
    partials_resumed: int
    #: Entries in the way that could not be cleared: (path, message).
    failures: list[tuple[str, str]]
    #: The repaired paths (the first thousand), for the report.
    repaired_paths: list[str]


def _split(rel: str) -> tuple[str, str]:
    """(parent, name) of a relative path; the parent of a top entry is ""."""
    parent, _, name = rel.rpartition("/")
    return parent, name


def _within(rel: str, ancestor: str) -> bool:
    return not ancestor or rel == ancestor or rel.startswith(ancestor + "/")




class _Level:
    """One destination directory being checked: its listing and the names
    whose partial state goes or stays."""

    def __init__(self, rel: str, listing: dict[str, ObjectInfo] | None) -> None:
        self.rel = rel
        self.listing = listing
        self.discard: set[str] = set()
        self.keep: set[str] = set()


class Audit:
    """One pass over a campaign's entries against the destination."""

    def __init__(
        self,
        store: CampaignStore,
        campaign: Campaign,
        driver: Driver,
        root: str,
        *,
        whole_file_max: int,
        clear_in_the_way: Callable[[str, ObjectInfo], str | None],
        created_root: bool = False,
    ) -> None:
        self.store = store
        self.campaign = campaign
        self.driver = driver
        self.root = root
        self.whole_file_max = whole_file_max
        #: Clears a non-directory or a directory standing where an entry
        #: belongs; returns why it could not, or ``None`` when cleared.
        self.clear_in_the_way = clear_in_the_way
        #: The destination root was created by this run: it holds nothing.
        self.created_root = created_root
        self._changes: list[tuple[str, FileState]] = []
        self._failed: list[Outcome] = []
        self.failures: list[tuple[str, str]] = []
        self.repaired = 0
        self.repaired_paths: list[str] = []
        self.partials_removed = 0
        self.partials_resumed = 0

    # -- listings ----------------------------------------------------------------

    def _list(self, rel: str) -> dict[str, ObjectInfo] | None:
        path = join(self.root, rel) if rel else self.root
        try:
            return {info.name: info for info in self.driver.scan(path)}
        except (NotFound, NotADirectory, UnicodeError):
            return None  # gone, replaced, or a name the destination cannot hold

    def _close(self, level: _Level) -> None:
        if level.listing is None or not (level.discard or level.keep):
            return
        path = join(self.root, level.rel) if level.rel else self.root
        removed, kept = self.driver.sweep_partials(path, level.discard, level.keep)
        self.partials_removed += removed
        self.partials_resumed += kept

    def _levels(self) -> Iterator[tuple[Record, _Level, str]]:
        stack = [_Level("", self._list(""))]
        try:
            for record in self.store.records(self.campaign):
                parent, name = _split(record.entry.rel)
                while not _within(parent, stack[-1].rel):
                    self._close(stack.pop())
                if stack[-1].rel != parent:
                    # Below a directory that is gone, everything is gone.
                    gone = stack[-1].listing is None
                    stack.append(_Level(parent, None if gone else self._list(parent)))
                yield record, stack[-1], name
        finally:
            while stack:
                self._close(stack.pop())

    # -- the pass ----------------------------------------------------------------

    def _nothing_to_check(self) -> bool:
        """A first run into a destination that did not exist: no entry was
        ever handed out and there is nothing there (not even a hidden
        partial), so the pass (a read of every entry) would find nothing."""
        if self.store.any_handed_out(self.campaign):
            return False
        return self.created_root or self._list("") is None

    def run(self) -> AuditResult:
        if self._nothing_to_check():
            return AuditResult(0, 0, 0, [], [])
        for record, level, name in self._levels():
            self._check(record, level, name)
            if len(self._changes) >= BATCH:
                self._flush()
        self._flush()
        return AuditResult(self.repaired, self.partials_removed, self.partials_resumed, self.failures,
                           self.repaired_paths)

    def _flush(self) -> None:
        self.store.set_states(self.campaign, self._changes)
        self.store.record(self.campaign, self._failed)
        self._changes, self._failed = [], []

    def _repair(self, record: Record, state: FileState) -> None:
        self._changes.append((record.entry.rel, state))
        self.repaired += 1
        if len(self.repaired_paths) < 1000:
            self.repaired_paths.append(record.entry.rel)

    def _in_the_way(self, record: Record, found: ObjectInfo) -> bool:
        """Clear ``found``, standing where ``record`` belongs; False (and the
        entry failed) when it cannot be cleared."""
        why = self.clear_in_the_way(join(self.root, record.entry.rel), found)
        if why is None:
            return True
        self.failures.append((record.entry.rel, why))
        self._failed.append(Outcome(record.entry.rel, FileState.FAILED, message=why))
        return False

    def _check(self, record: Record, level: _Level, name: str) -> None:
        e = record.entry
        found = level.listing.get(name) if level.listing is not None else None
        complete = record.state is FileState.COMPLETE
        if e.kind is Kind.DIR:
            if found is not None and found.is_dir and found.link is None:
                return
            if not complete:
                return  # what stands there was never ours: the directory step says so
            if found is not None and not self._in_the_way(record, found):
                return
            self._repair(record, FileState.PENDING)
            return
        # Whatever partial state of ours a file or link has is a dead run's
        # leftover, except that of a large file its next task resumes.
        resumable = e.kind is Kind.FILE and e.size > self.whole_file_max and not complete \
            and record.state is not FileState.PENDING
        (level.keep if resumable else level.discard).add(name)
        if e.kind is Kind.LINK:
            if found is not None and found.link == e.link:
                return
            if not complete:
                return
            if found is not None and found.is_dir and found.link is None and not self._in_the_way(record, found):
                return
            self._repair(record, FileState.PENDING)
            return
        if e.kind is Kind.HARDLINK:
            if found is not None and self._intact(record, found):
                return
            if not complete:
                return
            if found is not None and found.is_dir and found.link is None and not self._in_the_way(record, found):
                return
            self._repair(record, FileState.PENDING)  # linking again is cheap
            return
        # A regular file.
        if complete:
            if found is not None and self._intact(record, found):
                return
            if found is not None and found.is_dir and found.link is None and not self._in_the_way(record, found):
                return
            # Absent: nothing of ours is left once the sweep ran.  Present
            # but changed: it may only have been touched, so it is proven
            # equal by its checksum (kept) or written again.
            present = found is not None and not found.is_dir
            self._repair(record, FileState.STARTED if present else FileState.PENDING)
            return
        if record.state is not FileState.PENDING and not resumable and found is None:
            self._changes.append((e.rel, FileState.PENDING))

    @staticmethod
    def _intact(record: Record, found: ObjectInfo) -> bool:
        if found.is_dir or found.link is not None:
            return False
        if record.dst:
            return facts_match(record.dst, found)
        # Recorded before destination facts were kept: size and time only.
        e = record.entry
        return (found.size, found.mtime_ns) == (e.size, e.mtime_ns)

