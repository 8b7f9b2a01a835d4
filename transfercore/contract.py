"""The restart-marker contract: what every storage driver implements.

A *restart marker* for a destination object is a :class:`~transfercore.ranges.RangeSet`
``M``.  Every range a driver reports in ``M`` holds three invariants:

1. **Durable** — each byte in ``M`` equals the byte that was written and survives
   a crash of the process and of the host (power loss).  On POSIX that means
   after ``fdatasync`` of the file and ``fsync`` of the parent directory of any
   newly created file; on HPSS, as acknowledged by the bytes moved of a returned
   ``hpss_PIOExecute``.
2. **Resumable** — after any crash, the driver can accept exactly the missing
   ranges (the complement of ``M`` up to the size) and finish a complete, correct
   object without rewriting ``M``.
3. **Monotonic** — within one writer, a later marker contains every earlier one.

Progress ("bytes handed to the writer") is not a marker.  The one call that
produces markers is :meth:`Writer.durable`; nothing else may be reported as a
restart point.

On resume the driver is authoritative: :meth:`Driver.open_write` receives the
marker the caller holds and checks it against the storage.  A marker the
storage cannot back raises :class:`~transfercore.errors.RestartRejected`, and
the caller starts again from zero rather than leaving a gap.
"""

from __future__ import annotations

import abc
import builtins
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import attrs

from .capabilities import Capabilities
from .errors import RESUME_HINT, CapabilityError, InvalidRead, InvalidWrite, RestartRejected, ShortRead
from .options import OptionSpec, with_defaults
from .ranges import ByteRange, RangeSet


@attrs.frozen
class LocalFile:
    """A local source file for :meth:`Driver.copy_local_batch`, as the walk saw it."""

    #: Its path in the local file system.
    source: str
    #: The destination path (this driver's).
    path: str
    size: int
    mtime_ns: int
    mode: int
    #: ``st_dev`` and ``st_ino`` of the source: a file replaced since is not copied.
    dev: int
    ino: int


@attrs.frozen
class MetadataChange:
    """The permission bits and modification time to give one object (``None``: leave as is)."""

    path: str
    mode: int | None = None
    mtime_ns: int | None = None


@attrs.frozen
class ObjectInfo:
    """What a driver knows of one object or directory."""

    path: str
    size: int
    mtime_ns: int
    is_dir: bool = False
    #: Opaque text that changes when the object is replaced (e.g. ``dev:ino`` on POSIX).
    identity: str = ""
    mode: int = 0o644
    #: Opaque text that changes whenever the content may have changed, even
    #: when size and modification time were put back (POSIX: the inode change
    #: time, which no caller can set).  Empty when the storage has none.
    version: str = ""
    #: The target of a symbolic link, as stored (never followed); ``None`` for anything else.
    link: str | None = None
    #: True for a device, FIFO or socket: nothing a copy can move.
    special: bool = False
    #: How many names (hard links) the object has, where the storage counts them.
    links: int = 1

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]


def check_write(offset: object, length: int, size: int, where: str) -> int:
    """Check one write's span against an object of ``size`` bytes; return its end.

    The checks every driver needs before it touches storage, with the
    documented error: :class:`~transfercore.errors.InvalidWrite` for an offset
    that is not a non-negative whole number or bytes past the size.
    """
    if type(offset) is not int or offset < 0:
        raise InvalidWrite(f"write offset {offset!r} to {where} is not a non-negative whole number")
    end = offset + length
    if end > size:
        raise InvalidWrite(
            f"write {offset}-{end} to {where} goes past the object's size {size}",
            hint="the size given when the object was opened must be the final size",
        )
    return end


def check_read(offset: object, length: object, size: int, where: str) -> None:
    """Check one read's arguments against an object of ``size`` bytes.

    :class:`~transfercore.errors.InvalidRead` for an offset that is not a whole
    number from 0 to the size, or a length that is not a non-negative whole
    number.  A read may ask past the end; it then returns what there is.
    """
    if type(offset) is not int or offset < 0 or offset > size:
        raise InvalidRead(
            f"read offset {offset!r} of {where} is outside 0-{size}",
            hint="read offsets run from 0 to the object's size",
        )
    if type(length) is not int or length < 0:
        raise InvalidRead(f"read length {length!r} of {where} is not a non-negative whole number")


def check_resume(where: str, resume: RangeSet, size: int, recorded_size: int, recorded: RangeSet) -> None:
    """Check a caller's marker against a driver's durable resume record.

    Raises :class:`~transfercore.errors.RestartRejected`, saying why, when the
    marker goes past the size, the record was made for another size, or the
    record does not hold every byte of the marker: the storage is
    authoritative.
    """
    if resume.end() > size:
        raise RestartRejected(f"cannot resume {where}: marker {resume} goes past the size {size}")
    if recorded_size != size:
        raise RestartRejected(
            f"cannot resume {where}: the partial object was started with size {recorded_size}, not {size}"
        )
    if not recorded.contains(resume):
        raise RestartRejected(
            f"cannot resume {where}: marker {resume} is not all durable; the storage holds only "
            f"{recorded or 'nothing'} (missing {resume - recorded})"
        )


class Writer(abc.ABC):
    """Writes one object of a size known up front.

    Thread safety: up to ``capabilities.max_writers`` threads may call
    :meth:`write` at once; :meth:`durable`, :meth:`complete` and :meth:`abort`
    may be called from any one thread while writes are in flight.
    """

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """The final size of the object."""

    @property
    @abc.abstractmethod
    def resumed(self) -> RangeSet:
        """The marker accepted when the writer was opened (empty for a fresh write)."""

    @abc.abstractmethod
    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at ``offset``.

        Raises :class:`~transfercore.errors.InvalidWrite` for a negative offset,
        bytes past :attr:`size`, a range that overlaps the resumed marker or an
        earlier write, data out of order where the driver declares
        ``ordered_writes``; :class:`~transfercore.errors.WriterClosed` after
        :meth:`complete`, :meth:`abort` or :meth:`close`.  Returning means the
        bytes were accepted, not that they are durable.  The caller may reuse
        ``data``'s buffer as soon as this returns: a driver that keeps bytes
        for later must copy them.
        """

    def write_owned(self, offset: int, data: memoryview, release: Callable[[], None]) -> None:
        """Write ``data`` at ``offset``, given away: the caller never touches its buffer again.

        As :meth:`write`, except that a driver that keeps bytes for later
        (a staging queue) may keep ``data`` itself instead of a copy, and calls
        ``release()`` once nothing reads it any more (from any thread); the
        buffer then serves another block (:mod:`transfercore.blockpool`).
        Optional: by default the bytes are written with :meth:`write` and
        released when it returns.  A release that never comes (the write
        failed, the writer was aborted with blocks staged) only loses the
        reuse; a release while the driver still reads the buffer corrupts
        the data, so a driver calls it only after its last read.
        """
        try:
            self.write(offset, data)
        finally:
            release()

    @abc.abstractmethod
    def durable(self) -> RangeSet:
        """Make what was written durable and return the restart marker.

        The returned set is cumulative (it includes :attr:`resumed`), holds
        only bytes that are durable and resumable right now, and contains every
        set this writer returned before.  This is the only source of restart
        markers.
        """

    def read_durable(self, offset: int, buffer: bytearray | memoryview) -> None:
        """Fill all of ``buffer`` with the stored bytes at ``offset``, which
        must lie inside the latest marker.

        Optional; drivers that implement it declare ``read_back`` in their
        capabilities.  The engine then verifies the object while later bytes
        are still being written, and a mismatch is found before the object is
        published.  A destination without it is verified only after
        :meth:`complete` gave the object its final name (a mismatch then
        removes it): ``read_back`` is how a driver avoids that.  It may be
        called from one thread while others write and :meth:`durable` runs.

        A span outside the object raises
        :class:`~transfercore.errors.InvalidRead`; one inside the object but
        not inside the latest marker (bytes never written, or written and not
        yet durable) raises :class:`~transfercore.errors.InvalidWrite`; after
        :meth:`complete`, :meth:`abort` or :meth:`close`,
        :class:`~transfercore.errors.WriterClosed`.

        "Stored" means what the storage returns to any reader of the object
        from then on, not a copy kept from the write.  A driver whose storage
        has caches it can bypass may offer that as an option (the POSIX
        driver's ``direct`` reads from the device), at the cost of a second
        pass over the device.
        """
        raise CapabilityError("this writer cannot read back durable bytes")

    def set_metadata(self, *, mode: int | None = None, mtime_ns: int | None = None) -> bool:
        """Ask for the object to be published with these permission bits and
        modification time (as ``cp -p`` keeps them).

        Optional: returns False when the driver cannot keep them, and the
        object is published with the storage's own.  A driver that can applies
        them before its last durable point, so they survive with the bytes.
        """
        return False

    @abc.abstractmethod
    def complete(self) -> None:
        """All bytes were written: make the whole object durable and publish it
        under its final name (atomically where the driver declares it)."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Stop writing and keep the durable partial state for a later resume."""

    def close(self) -> None:
        """Release resources; an incomplete object is kept as by :meth:`abort`."""
        self.abort()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RangeWriter(abc.ABC):
    """One of several independent writers of one object, each writing only
    its own range (drivers declaring ``range_writers``).

    Writers may run in threads, processes or hosts that share the storage,
    and never talk to each other: each makes its range durable on its own
    (:meth:`durable`), and the object's durable ranges are the union of
    what every writer made durable, as the storage reads it back
    (:meth:`Driver.durable_ranges`).  No writer publishes: one party, the
    coordinator, calls :meth:`Driver.publish_ranges` once the union covers
    the object.  The markers hold the contract's invariants per writer:
    durable, resumable, monotonic.
    """

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """The final size of the whole object."""

    @property
    @abc.abstractmethod
    def span(self) -> ByteRange:
        """The range this writer may write."""

    @property
    @abc.abstractmethod
    def writer_id(self) -> str:
        """The name the writer was opened with (unique among the object's writers)."""

    @property
    @abc.abstractmethod
    def resumed(self) -> RangeSet:
        """What of :attr:`span` was durable when the writer was opened, by
        whichever writer: never to be written again."""

    @abc.abstractmethod
    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at ``offset``, inside :attr:`span` and outside
        :attr:`resumed` and earlier writes (else
        :class:`~transfercore.errors.InvalidWrite`)."""

    @abc.abstractmethod
    def durable(self) -> RangeSet:
        """Make what this writer wrote durable and return its marker: cumulative,
        inside :attr:`span`, including :attr:`resumed`."""

    def read_durable(self, offset: int, buffer: bytearray | memoryview) -> None:
        """Fill ``buffer`` with the stored bytes at ``offset``, inside the latest marker."""
        raise CapabilityError("this range writer cannot read back durable bytes")

    @abc.abstractmethod
    def finish(self) -> RangeSet:
        """Every byte of :attr:`span` was written: make it durable, release
        the writer and return the marker (the whole span).  Nothing is
        published; raises :class:`~transfercore.errors.InvalidWrite` while
        bytes of the span are missing."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Stop writing; what :meth:`durable` returned stays durable for a later writer."""

    def close(self) -> None:
        self.abort()

    def __enter__(self) -> RangeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Reader(abc.ABC):
    """Reads one object.  :meth:`read` is safe to call from several threads
    unless the driver declares ``ordered_writes`` (which also orders reads)."""

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """The size of the object."""

    @abc.abstractmethod
    def read(self, offset: int, length: int) -> bytes:
        """Return exactly ``min(length, size - offset)`` bytes at ``offset``.

        A short result for any other reason is an error, never silently returned:
        a checksum must fail on an I/O error, not hash garbage.  A read after
        :meth:`close` raises :class:`~transfercore.errors.ReaderClosed`.
        """

    def readinto(self, offset: int, buffer: bytearray | memoryview) -> None:
        """Fill all of ``buffer`` with the bytes at ``offset``, or raise.

        Drivers override it to read straight into the caller's buffer (which a
        stream then reuses for every block); this default copies from
        :meth:`read`.
        """
        view = memoryview(buffer).cast("B")
        data = self.read(offset, view.nbytes)
        if len(data) != view.nbytes:
            raise ShortRead("the source", offset, len(data), view.nbytes, hint=RESUME_HINT)
        view[:] = data

    def close(self) -> None:  # noqa: B027 - optional hook with a sane default
        """Release resources."""

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: The optional namespace methods of :class:`Driver`; :meth:`Driver.namespace` names those implemented.
NAMESPACE_OPERATIONS = ("list", "mkdir", "rmdir", "remove", "rename")


class Driver(abc.ABC):
    """A storage driver, created by the registry from a URL.

    Subclasses set :attr:`name` and :attr:`options`, and implement the abstract
    methods.  Paths are absolute, ``/``-separated, as they appear in the URL.
    """

    #: The entry-point name, e.g. ``"posix"``.
    name: ClassVar[str] = ""
    #: Options accepted as URL query parameters, by name.
    options: ClassVar[Mapping[str, OptionSpec]] = {}

    def __init__(self, authority: str = "", options: Mapping[str, Any] | None = None) -> None:
        self.authority = authority
        #: The parsed options (from the URL, through the registry), every
        #: declared option that was not given at its default.
        self.settings: dict[str, Any] = with_defaults(self.options, options or {})

    # -- description -----------------------------------------------------------

    @abc.abstractmethod
    def capabilities(self) -> Capabilities:
        """What this driver, as configured, promises."""

    def describe(self) -> dict[str, Any]:
        """Extra facts for listings (backend, versions).  JSON-ready."""
        return {}

    # -- objects ---------------------------------------------------------------

    @abc.abstractmethod
    def stat(self, path: str) -> ObjectInfo:
        """Information on the object at ``path``; ``NotFound`` when absent."""

    @abc.abstractmethod
    def open_write(self, path: str, size: int, resume: RangeSet | None = None) -> Writer:
        """Open ``path`` for writing ``size`` bytes.

        ``resume=None`` or an empty set starts a fresh object, discarding any
        partial state.  A non-empty ``resume`` is the marker the caller holds:
        the driver checks it against its durable record and the storage, and
        raises :class:`~transfercore.errors.RestartRejected` when it cannot back
        every byte of it.  The driver may accept it only when its own record
        contains it.
        """

    @abc.abstractmethod
    def open_read(self, path: str) -> Reader:
        """Open the complete object at ``path`` for reading."""

    def open_new(self, path: str, size: int) -> Writer:
        """Open ``path`` for a fresh write the caller knows has no partial state
        (it never started one there).  A driver may then skip looking for stale
        partial state; the default is ``open_write(path, size)``."""
        return self.open_write(path, size)

    def complete_batch(
        self, writers: Sequence[Writer], verify: Callable[[Writer], None] | None = None
    ) -> list[BaseException | None]:
        """Publish many fully written objects, each durable under its final name
        on return, with one durable point for all of them where the driver can.

        For every writer in turn: its bytes are made durable, then
        ``verify(writer)`` is called (it may read the whole object with
        :meth:`Writer.read_durable`; raising refuses publication), then the
        object is published.  Returns one entry per writer: ``None`` when it
        was published and is durable, else the error, and that writer was
        aborted, never published.  A failure of one object does not stop the
        others.

        The default is one durable point per object (``durable()``, verify,
        ``complete()``).  A driver may instead sync all the objects together,
        verify them, publish them all, and make the names durable once (the
        POSIX driver: concurrent syncs, the renames, one sync per directory);
        the contract is the same: nothing is published unverified or before
        its bytes are durable, and nothing this returns as published is lost.
        """
        results: list[BaseException | None] = []
        for writer in writers:
            try:
                if verify is not None:
                    writer.durable()
                    verify(writer)
                writer.complete()
            except Exception as exc:  # noqa: BLE001 - reported per object
                try:
                    writer.abort()
                except Exception:  # noqa: BLE001 - the first error is the one to report
                    pass
                results.append(exc)
            else:
                results.append(None)
        return results

    def copy_local_batch(
        self, files: Sequence[LocalFile], algorithm: str | None
    ) -> list[tuple[str, ObjectInfo] | None] | None:
        """Copy many small files of the local file system into this storage in
        one step, with one durable point for all of them (a tree copy's fast
        path for small files).  ``None`` (the default): the driver has no such
        path and the caller copies each file through a :class:`Writer`.

        Otherwise one entry per file: ``(checksum, info)`` when the file was
        read unchanged (as :class:`LocalFile` describes it), written, made
        durable, read back and found equal by ``algorithm`` (lowercase hex;
        ``""`` without an algorithm), and published durable under its final
        name, ``info`` being the published object as :meth:`lstat` would
        report it; ``None`` when it was not published (nothing is left under
        its final name by this call, and the caller copies it the ordinary way,
        which reports what is wrong).  A driver returns ``None`` for the whole
        batch when it cannot compute ``algorithm``."""
        return None

    # -- many writers of one object (capability ``range_writers``) ------------------

    def open_range_write(self, path: str, size: int, span: ByteRange, writer_id: str) -> RangeWriter:
        """Open one of many independent writers of ``path`` (``size`` bytes in
        all) for the bytes of ``span``.  Whatever of ``span`` the storage
        already holds durable, by any earlier writer, is the new writer's
        :attr:`~RangeWriter.resumed` and is never written again.  Writers of
        the same object must use distinct ``writer_id`` values; the first one to
        open creates the unfinished object, the others join it.  A partial
        object started with another size raises
        :class:`~transfercore.errors.RestartRejected`: discard it first
        (:meth:`discard_partial`)."""
        raise CapabilityError(f"driver {self.name!r} cannot take several writers of one object")

    def durable_ranges(self, path: str, size: int) -> RangeSet:
        """The union of what every range writer of ``path`` made durable, read
        back from the storage now (empty when there is no unfinished object).
        A record the storage cannot back (torn, edited, claiming more than the
        storage holds, of another size) counts for nothing."""
        raise CapabilityError(f"driver {self.name!r} cannot take several writers of one object")

    def publish_ranges(self, path: str, size: int, verify: Callable[[Reader], None] | None = None) -> None:
        """Publish the object the range writers of ``path`` wrote, once: refused
        (:class:`~transfercore.errors.InvalidWrite`, nothing published) unless
        the durable union covers all ``size`` bytes; ``verify`` may then read
        the stored object and refuse it by raising.  Then the object gets its
        final name (atomically where ``atomic_publish`` is declared) and the
        writers' records go."""
        raise CapabilityError(f"driver {self.name!r} cannot take several writers of one object")

    def partial(self, path: str) -> RangeSet:
        """The durable marker of an unfinished write of ``path`` as the storage
        records it (empty when there is none).  Services use it to answer a
        client's restart request truthfully."""
        return RangeSet()

    def discard_partial(self, path: str) -> None:  # noqa: B027 - optional hook
        """Forget an unfinished write of ``path`` and its resume record."""

    def sweep_partials(
        self, directory: str, discard: Collection[str], keep: Collection[str] = ()
    ) -> tuple[int, int]:
        """In ``directory``, remove the unfinished-write state (partial data,
        resume records) of the objects named in ``discard``, with one listing
        of the directory, and leave that of the names in ``keep``.  Returns
        (objects whose state was removed, objects in ``keep`` that have some).
        A tree copy's rerun clears what a dead run left with it.  The default
        is for drivers that keep no partial state beside the objects."""
        return 0, 0

    def checksum(self, path: str, algorithm: str) -> str | None:
        """The storage's own checksum of a complete object (lowercase hex), or
        ``None`` when the storage cannot compute ``algorithm`` itself; callers
        then read the object back."""
        return None

    def local_path(self, path: str) -> str | None:
        """The local file system path that holds ``path``, for drivers that
        store plain local files (``None`` otherwise).  The conformance kit uses
        it to run the power-loss clause on a file system that drops unsynced
        writes."""
        return None

    def simulate_crash(self) -> None:
        """Drop everything not durable, as a power loss would.  Only drivers
        declaring ``crash_simulation`` implement it."""
        raise CapabilityError(f"driver {self.name!r} cannot simulate a crash in process")

    # -- namespace (services such as the GridFTP server need these) -------------

    def namespace(self) -> frozenset[str]:
        """The namespace operations this driver implements (derived from the methods it overrides)."""
        return frozenset(
            name for name in NAMESPACE_OPERATIONS if getattr(type(self), name) is not getattr(Driver, name)
        )

    def list(self, path: str) -> Iterator[ObjectInfo]:
        """A directory's entries as a client is shown them: links followed (a
        link that leads nowhere may be left out), partial uploads hidden.  An
        entry removed while the directory is listed is left out; one that is
        there but cannot be looked at raises (a recursive download of the
        listing must not end without it)."""
        raise CapabilityError(f"driver {self.name!r} cannot list directories")

    def scan(self, path: str) -> Iterator[ObjectInfo]:
        """List a directory for a tree copy: symbolic links reported as links
        (``ObjectInfo.link``), never followed; devices, FIFOs and sockets
        reported with ``special``.  An entry removed while the directory is
        listed is left out; one that is there but cannot be looked at raises
        (a tree copy must not end without it).  The default is :meth:`list`,
        for drivers whose namespace has neither."""
        return self.list(path)

    def lstat(self, path: str) -> ObjectInfo:
        """Like :meth:`stat` but a symbolic link is reported, not followed."""
        return self.stat(path)

    def symlink(self, path: str, target: str, *, mtime_ns: int | None = None) -> None:
        """Create (or replace) the symbolic link ``path`` pointing to ``target``,
        durably, with the modification time ``mtime_ns`` where the storage keeps one."""
        raise CapabilityError(f"driver {self.name!r} cannot create symbolic links")

    def hardlink(self, path: str, existing: str) -> None:
        """Make ``path`` (created, or replaced) another name of the object at
        ``existing``, durably."""
        raise CapabilityError(f"driver {self.name!r} cannot create hard links")

    def set_metadata(self, path: str, *, mode: int | None = None, mtime_ns: int | None = None) -> None:
        """Set the permission bits and modification time of a directory or object."""
        raise CapabilityError(f"driver {self.name!r} cannot set permissions or modification times")

    def set_metadata_many(self, changes: Sequence[MetadataChange]) -> builtins.list[BaseException | None]:
        """:meth:`set_metadata` for many directories or objects, all durable on
        return: one entry per change, ``None`` or the error.  The default calls
        :meth:`set_metadata` for each; a driver may make them durable together
        (POSIX: the inodes synced concurrently, or one ``syncfs``)."""
        results: builtins.list[BaseException | None] = []
        for change in changes:
            try:
                self.set_metadata(change.path, mode=change.mode, mtime_ns=change.mtime_ns)
            except Exception as exc:  # noqa: BLE001 - reported per change
                results.append(exc)
            else:
                results.append(None)
        return results

    def mkdir(self, path: str) -> None:
        raise CapabilityError(f"driver {self.name!r} cannot create directories")

    def mkdirs(self, paths: Sequence[str]) -> builtins.list[BaseException | None]:
        """Create many directories, in the order given (parents first), all
        durable on return: one entry per path, ``None`` or the error.  The
        default calls :meth:`mkdir` for each; a driver may make them durable
        together (POSIX: each parent directory synced once)."""
        results: builtins.list[BaseException | None] = []
        for path in paths:
            try:
                self.mkdir(path)
            except Exception as exc:  # noqa: BLE001 - reported per directory
                results.append(exc)
            else:
                results.append(None)
        return results

    def rmdir(self, path: str) -> None:
        raise CapabilityError(f"driver {self.name!r} cannot remove directories")

    def remove(self, path: str) -> None:
        raise CapabilityError(f"driver {self.name!r} cannot remove objects")

    def rename(self, src: str, dst: str) -> None:
        raise CapabilityError(f"driver {self.name!r} cannot rename objects")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release driver-wide resources (sessions, connections)."""
