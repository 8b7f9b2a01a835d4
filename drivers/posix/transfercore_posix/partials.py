"""The POSIX driver's unfinished objects: opening a partial file fresh or to resume it, discarding and sweeping.

An unfinished object is a hidden partial file beside its final name
(:mod:`.names`); its resume state is the sidecar record (:mod:`.sidecar`).
A record is trusted only while the partial file it names is still the one
it was written for and holds the bytes it claims.
"""

from __future__ import annotations

import bisect
import errno
import os
import threading
import time
from collections.abc import Collection

import attrs

from transfercore.driverkit import check_parent_directory, check_resume, fsync_dir, new_token
from transfercore.errors import RestartRejected, from_oserror
from transfercore.ranges import RangeSet

from . import names, sidecar
from .direct import MIN_DIRECT, DirectFile, alignment_of, open_direct
from .fsutil import remove_quietly
from .sidecar import CorruptSidecar, SidecarRecord
from .writer import PosixWriter

_RW = os.O_RDWR | os.O_CLOEXEC


@attrs.frozen
class WriteOptions:
    """The driver's options that shape its writers."""

    #: one pwrite into a file at a time (the option parallel_pwrite off)
    serial_pwrite: bool
    #: the option direct: off, auto or on
    direct: str
    #: drop read-back pages from the page cache (the option keep_cache off)
    drop_read_back: bool


def open_fresh(path: str, directory: str, name: str, size: int, options: WriteOptions) -> PosixWriter:
    """A writer of a new partial file (any stale one discarded by the caller first)."""
    token = new_token()
    partial = os.path.join(directory, names.partial_name(name, token))
    try:
        fd = os.open(partial, _RW | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            check_parent_directory(directory, path)  # the clear error: no such directory, or not one
        raise from_oserror(exc, f"cannot create the partial file of {path}") from exc
    try:
        direct = _open_direct(partial, fd, options.direct, size)
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
        serial_pwrite=options.serial_pwrite, direct=direct,
        drop_read_back=options.drop_read_back,
    )


def open_resumed(
    path: str, directory: str, name: str, size: int, resume: RangeSet, options: WriteOptions
) -> PosixWriter:
    """A writer going on with the partial file its record names, holding ``resume``."""
    if resume.end() > size:
        raise RestartRejected(f"cannot resume {path}: marker {resume} goes past the size {size}")
    record, reason = load_record(directory, name)
    if record is None:
        raise RestartRejected(f"cannot resume {path}: {reason}")
    check_resume(path, resume, size, record.size, record.ranges)
    fd, why = open_partial(directory, name, record)
    if fd is None:
        raise RestartRejected(f"cannot resume {path}: {why}")
    _remove_temp_records(directory, name)
    stored = True
    try:
        direct = _open_direct(os.path.join(directory, names.partial_name(name, record.token)), fd, options.direct, size)
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
        serial_pwrite=options.serial_pwrite, direct=direct,
        drop_read_back=options.drop_read_back,
    )


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


def _open_direct(partial: str, fd: int, mode: str, size: int) -> DirectFile | None:
    if mode == "auto" and size < MIN_DIRECT:
        # No write of this object can go direct (each is shorter than MIN_DIRECT):
        # a small file saves the second open and the alignment probe.
        return None
    direct_fd = open_direct(partial, mode)
    if direct_fd is None:
        return None
    return DirectFile(direct_fd, alignment_of(fd), strict=mode == "on")


def load_record(directory: str, name: str) -> tuple[SidecarRecord | None, str]:
    """The object's resume record, or None and why there is none to trust."""
    try:
        record = sidecar.load(directory, name)
    except CorruptSidecar as exc:
        return None, str(exc)
    if record is None:
        return None, "there is no durable resume record (never made durable, or discarded)"
    return record, ""


def open_partial(directory: str, name: str, record: SidecarRecord) -> tuple[int | None, str]:
    """The partial file ``record`` names, opened, when it is still the one it names; else None and why."""
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


def held_ranges(directory: str, name: str) -> RangeSet:
    """What a restart of the object may rely on (``Driver.partial``)."""
    record, _ = load_record(directory, name)
    if record is None:
        return RangeSet()
    fd, _ = open_partial(directory, name, record)
    if fd is None:
        return RangeSet()
    os.close(fd)
    return record.ranges


def discard(directory: str, name: str, *, sync: bool) -> None:
    """Remove the object's record and every partial file of it."""
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


#: How long one listing of a directory stands for the leftovers in it, seconds.
LISTING_LIFETIME = 2.0
#: Directories whose listing a driver keeps at once (the oldest is dropped).
LISTED_DIRECTORIES = 64


class _Listing:
    # A plain class: an attrs class costs about a millisecond more at import,
    # which every DSI session pays.
    __slots__ = ("hidden", "opened", "taken")

    def __init__(self, taken: float, hidden: list[str], opened: set[str]) -> None:
        self.taken = taken
        #: every entry of the directory beginning with "." when it was listed, sorted
        self.hidden = hidden
        #: stems of the objects this driver has opened fresh writers of since
        self.opened = opened


class Leftovers:
    """Finding an earlier partial file of an object before a fresh writer of it
    starts, without listing its directory for every object.

    An earlier writer of the same name may have left a partial file (killed
    before it stored a record, or aborted) and temporary records; their
    names carry random tokens, so finding them takes a listing.  Listing at
    every fresh open makes a tree written into one directory quadratic (a
    listing per file, each longer than the last).  So a directory is listed
    once per :data:`LISTING_LIFETIME`, and a fresh open lists again (the full
    :func:`discard`) only when that listing held a hidden name of the object,
    this driver opened a writer of it since, its resume record was there
    (removed by its name at every open), or its ranges anchor is there
    (looked up by its name).  A leftover without a record that another
    process left after the listing is found at the next listing: nothing
    trusts it meanwhile (no record names it), and ``sweep_partials`` removes
    it too.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listings: dict[str, _Listing] = {}

    def need_discard(self, directory: str, name: str, path: str) -> bool:
        """Before a fresh writer of ``name`` (the object ``path``): remove its
        resume record (by its name; a fresh writer never resumes, and another
        process may have made it since the listing) and say whether an earlier
        writer may have left more, so the full :func:`discard` (a listing) is due.

        A directory that cannot be listed is checked, for the clear error when
        it is missing (a fresh writer does not look at its directory before).
        """
        try:
            return (sidecar.remove(directory, name)
                    or self._may_have_leftovers(directory, names.stem(name), names.hidden_prefix(name))
                    or os.path.lexists(os.path.join(directory, names.ranges_anchor_name(name))))
        except _Unlisted:
            check_parent_directory(directory, path)
            return True  # listed by the full discard, which reports what stops it

    def _may_have_leftovers(self, directory: str, stem: str, prefix: str) -> bool:
        now = time.monotonic()
        with self._lock:
            listing = self._listings.get(directory)
            if listing is not None and now - listing.taken <= LISTING_LIFETIME:
                seen = stem in listing.opened or _any_starting(listing.hidden, prefix)
                listing.opened.add(stem)
                return seen
        try:
            hidden = sorted(e for e in os.listdir(directory) if e.startswith("."))
        except OSError:
            raise _Unlisted from None
        with self._lock:
            # Writers opened by other threads while this one listed stay noted
            # (an older listing's are in this one: their partial files exist).
            old = self._listings.pop(directory, None)
            opened = {stem} | (old.opened if old is not None and old.taken >= now else set())
            if len(self._listings) >= LISTED_DIRECTORIES:
                del self._listings[next(iter(self._listings))]
            self._listings[directory] = _Listing(taken=now, hidden=hidden, opened=opened)
        return _any_starting(hidden, prefix)


class _Unlisted(Exception):
    """The directory could not be listed."""


def _any_starting(ordered: list[str], prefix: str) -> bool:
    i = bisect.bisect_left(ordered, prefix)
    return i < len(ordered) and ordered[i].startswith(prefix)


def sweep(local: str, directory: str, drop: Collection[str], keep: Collection[str] = ()) -> tuple[int, int]:
    """``Driver.sweep_partials`` in the local directory ``local`` (URL path ``directory``)."""
    try:
        hidden = [e for e in os.listdir(local) if e.startswith(".") and names.is_hidden(e)]
    except FileNotFoundError:
        return 0, 0
    except OSError as exc:
        raise from_oserror(exc, f"cannot list {directory}") from exc
    if not hidden:
        return 0, 0
    gone = {names.stem(n) for n in drop}
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
        # The record goes first, as in discard(): partial data with no
        # record is never trusted, a record naming lost data would be.
        entries.sort(key=lambda e: not e.endswith(names.SIDECAR_SUFFIX))
        for entry in entries:
            remove_quietly(os.path.join(local, entry))
        removed += 1
    if removed:
        fsync_dir(local)
    return removed, sum(1 for stem in by_stem if stem in kept)
