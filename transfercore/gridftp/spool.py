"""Uploads of unknown size (STOR without ALLO) are spooled, then stored.

A driver writer needs the final size up front, and a client that sends no
``ALLO`` (plain FTP clients, a third-party transfer whose source cannot be
sized) gives none.  Such an upload is received into a spool file; when the
data end, the size is known and the spool is copied into a driver writer and
completed.

A :class:`Spool` opened in a spool directory is itself restartable storage:
:meth:`Spool.durable` makes the bytes written so far durable
(``fdatasync``) and records their ranges in a side file (written atomically,
fsynced, the directory too), so restart markers name only those ranges, and
after a failure or a crash of the server a ``REST`` (without ``ALLO``)
resumes into the same spool.  Without a directory the spool is anonymous
memory, vanishes with the process, and gives no markers.

A spool may start in memory (``memory_until``): a small upload that ends
before a restart marker is due never touches the disk on its way to the
destination (its bytes go from memory into the driver's writer, and the
``226`` comes from the writer's own durable point).  Only when a marker is
due (:meth:`Spool.durable`) or the upload outgrows the bound is the spool
moved to its file (its record reset durably first, so a ``111`` still names
only bytes that are on disk), or for a spool without one to anonymous
memory.  Until then its bytes are a buffer of the process, not a file: a
small upload costs no descriptor and no system call to spool, read back and
drop (five a file, and the kernel's pages zeroed and freed, against an
anonymous file).

The spool never lives outside the destination's storage unless the operator
says so (``--spool-dir``): the server puts it in the destination's own
directory under hidden partial names, or in memory for storage without local
paths.  It is bounded (``limit``), so a client cannot fill a disk by never
sending the end of an upload.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from ..contract import Writer
from ..errors import InvalidWrite, RestartRejected, TransferAborted, from_oserror
from ..ranges import ByteRange, RangeSet

COPY_BLOCK = 4 * 1024 * 1024
#: Bytes a restartable spool may hold in memory before it moves to its file
#: (per upload; the size from which the server completes an upload alone, too).
MEMORY_FIRST = 8 * 1024 * 1024
_SUFFIX = ".tcpart"


class SpoolFull(InvalidWrite):
    """The upload is larger than the spool may hold."""


class Spool:
    """A sparse file accepting positional writes from several threads."""

    def __init__(
        self,
        directory: str | None = None,
        *,
        key: str | None = None,
        resume: RangeSet | None = None,
        limit: int | None = None,
        memory_until: int = 0,
        make_directory: bool = True,
    ) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        #: Held while the spool is in memory, by every write and by the move to the file.
        self._switch = threading.Lock()
        self._memory = False
        #: the bytes while the spool is in memory (a hole reads as zeros, as in a sparse file)
        self._buffer = bytearray()
        #: no descriptor while the spool is in memory
        self._fd = -1
        #: an in-memory spool being copied out stays in memory (see :meth:`pinned_in_memory`)
        self._pinned = False
        self._memory_until = memory_until
        self._spans: list[ByteRange] = []
        self._record: Path | None = None
        self._path: Path | None = None
        #: where a spool without a record goes (None: anonymous memory)
        self._directory = directory
        self.resumed = RangeSet()
        if directory is None or key is None:
            if resume:
                raise RestartRejected("no spool directory: an upload without ALLO cannot resume")
            if memory_until > 0:
                self._memory = True
            else:
                self._fd = self._open_nameless()
            return
        base = Path(directory)
        if make_directory:  # (not the destination's own directory, known to exist)
            base.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(key.encode()).hexdigest()[:32]
        # hidden partial names: listings leave them out, beside the destination or in --spool-dir
        self._path = base / f".tc-spool-{name}.tcpart"
        self._record = base / f".tc-spool-{name}.ranges.tcpart"
        if resume:
            held = self._load()
            if not held.contains(resume):
                raise RestartRejected(
                    f"cannot resume the spooled upload: marker {resume} is not all durable; "
                    f"the spool holds only {held or 'nothing'}"
                )
            self.resumed = resume
            self._fd = os.open(self._path, os.O_RDWR)
        elif memory_until > 0:
            # Nothing on disk until a marker is due or the upload outgrows memory.
            # A spool an earlier attempt left under this name is stale (this one
            # does not resume it): it goes now (not durably: after a crash it is
            # what the client's own markers of that attempt named, no more).
            for stale in (self._record, self._path):
                try:
                    stale.unlink()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise from_oserror(exc, "cannot remove a stale upload spool") from exc
            self._memory = True
        else:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            self._save(RangeSet())
        self._spans = list(self.resumed.ranges)

    @property
    def restartable(self) -> bool:
        return self._record is not None

    def _open_nameless(self) -> int:
        """The descriptor of a spool without a record: anonymous memory, or a nameless file."""
        try:
            if self._directory is None:
                # never the system's temporary directory: that is outside the served storage
                return os.memfd_create("tc-gridftp-spool", os.MFD_CLOEXEC)
            fd, path = tempfile.mkstemp(prefix=".tc-gridftp-spool-", suffix=".tcpart", dir=self._directory)
        except OSError as exc:
            raise from_oserror(exc, "cannot create the upload spool") from exc
        os.unlink(path)  # nameless: it vanishes with the process, whatever happens
        return fd

    @property
    def in_memory(self) -> bool:
        """Whether the spool still holds its bytes in this process's memory only."""
        return self._memory

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        if offset < 0:
            raise InvalidWrite(f"negative offset {offset}")
        view = memoryview(data)
        if self.limit is not None and offset + len(view) > self.limit:
            raise SpoolFull(
                f"an upload of unknown size may spool at most {self.limit} bytes",
                hint="send ALLO <size> before STOR so the data goes straight to storage",
            )
        if self._memory:
            with self._switch:
                if self._memory:
                    buffer = self._buffer
                    if offset > len(buffer):
                        buffer.extend(bytes(offset - len(buffer)))
                    buffer[offset : offset + len(view)] = view
                    with self._lock:
                        self._spans.append(ByteRange(offset, offset + len(view)))
                    if len(buffer) > self._memory_until:
                        self._to_file()
                    return
        self._pwrite(offset, view)

    def _pwrite(self, offset: int, view: memoryview) -> None:
        pos = 0
        while pos < len(view):
            try:
                pos += os.pwrite(self._fd, view[pos:], offset + pos)
            except OSError as exc:
                raise from_oserror(exc, "cannot write the upload spool") from exc
        with self._lock:
            self._spans.append(ByteRange(offset, offset + len(view)))

    def received(self) -> RangeSet:
        """Everything written, the resumed ranges included."""
        with self._lock:
            merged = RangeSet(tuple(self._spans))
            self._spans = list(merged.ranges)
            return merged

    def _to_file(self) -> None:
        """Move the in-memory spool to its file, or without one to anonymous memory (the caller
        holds ``_switch``).

        The record is reset durably before a byte reaches the file, so a
        stale record can never describe these bytes."""
        if self._path is None:
            fd = self._open_nameless()
        else:
            self._save(RangeSet())
            try:
                fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            except OSError as exc:
                raise from_oserror(exc, "cannot create the upload spool") from exc
        view = memoryview(self._buffer)
        try:
            done = 0
            while done < len(view):
                done += os.pwrite(fd, view[done:], done)
        except OSError as exc:
            os.close(fd)
            raise from_oserror(exc, "cannot write the upload spool") from exc
        except BaseException:
            os.close(fd)
            raise
        finally:
            view.release()
        self._fd = fd
        self._memory = False
        # (a writer still holding a view of it keeps it alive: nothing writes to it again)
        self._buffer = bytearray()

    def durable(self) -> RangeSet:
        """Make what was written durable and return it (the restart marker)."""
        if self._record is None:
            return RangeSet()
        if self._memory:
            with self._switch:
                if self._pinned:
                    return RangeSet()  # in memory only: nothing is durable
                if self._memory:
                    self._to_file()
        written = self.received()  # before the flush: only bytes written before it count
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            raise from_oserror(exc, "cannot flush the upload spool") from exc
        self._save(written)
        return written

    @contextlib.contextmanager
    def pinned_in_memory(self) -> Iterator[bool]:
        """While the block runs, an in-memory spool stays in memory; yields whether it is in memory.

        For copying it out while its restart markers may still be asked for:
        moving it to its file meanwhile would close the descriptor being read.
        Markers asked for meanwhile name nothing new (the bytes are in memory only).
        """
        with self._switch:
            pinned = self._pinned = self._memory
        try:
            yield pinned
        finally:
            with self._switch:
                self._pinned = False

    def copy_into(
        self, writer: Writer, stop: threading.Event | None = None, offset: int = 0, length: int | None = None
    ) -> None:
        """Write the spool's first ``length`` bytes (all the writer holds) into ``writer`` from ``offset`` on."""
        size = writer.size - offset if length is None else length
        memory = memoryview(self._buffer) if self._memory else None
        pos = 0
        while pos < size:
            if stop is not None and stop.is_set():
                raise TransferAborted("transfer aborted while storing the spooled upload")
            n = min(COPY_BLOCK, size - pos)
            data: bytes | memoryview = memory[pos : pos + n] if memory is not None else os.pread(self._fd, n, pos)
            if len(data) != n:
                raise InvalidWrite(f"upload spool is short at {pos}: {len(data)} of {n} bytes")
            writer.write(offset + pos, data)
            pos += n

    def close(self) -> None:
        self._buffer = bytearray()
        if self._fd < 0:
            return
        try:
            os.close(self._fd)
        except OSError:
            pass
        self._fd = -1

    def discard(self) -> None:
        """The upload is stored: the spool and its record go."""
        self.close()
        if self._memory:
            return  # never on disk (a stale one went when this spool was made)
        for p in (self._record, self._path):
            if p is not None:
                try:
                    p.unlink()
                except FileNotFoundError:
                    pass

    # -- the record of durable ranges ---------------------------------------------------

    def _load(self) -> RangeSet:
        assert self._record is not None and self._path is not None
        try:
            recorded = json.loads(self._record.read_text())["durable"]
            held = RangeSet.parse(recorded) if recorded else RangeSet()
        except (OSError, ValueError, KeyError):
            return RangeSet()
        try:
            size = self._path.stat().st_size
        except OSError:
            return RangeSet()
        return held if held.end() <= size else RangeSet()

    def _save(self, held: RangeSet) -> None:
        assert self._record is not None
        # a name of its own (and hidden, a partial name): no other writer of the record replaces it
        tmp = self._record.with_name(f"{self._record.name[:-len(_SUFFIX)]}.{os.getpid()}.{threading.get_ident()}{_SUFFIX}")
        try:
            with open(tmp, "w") as f:
                json.dump({"durable": str(held) if held else ""}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._record)
            dfd = os.open(self._record.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            raise from_oserror(exc, "cannot record the upload spool's durable ranges") from exc
