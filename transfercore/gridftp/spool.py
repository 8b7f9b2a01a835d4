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

The spool never lives outside the destination's storage unless the operator
says so (``--spool-dir``): the server puts it in the destination's own
directory under hidden partial names, or in memory for storage without local
paths.  It is bounded (``limit``), so a client cannot fill a disk by never
sending the end of an upload.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path

from ..contract import Writer
from ..errors import InvalidWrite, RestartRejected, TransferAborted, from_oserror
from ..ranges import ByteRange, RangeSet

COPY_BLOCK = 4 * 1024 * 1024
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
    ) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._spans: list[ByteRange] = []
        self._record: Path | None = None
        self._path: Path | None = None
        self.resumed = RangeSet()
        if directory is None or key is None:
            if resume:
                raise RestartRejected("no spool directory: an upload without ALLO cannot resume")
            if directory is None:
                # never the system's temporary directory: that is outside the served storage
                self._fd = os.memfd_create("tc-gridftp-spool", os.MFD_CLOEXEC)
                return
            fd, path = tempfile.mkstemp(prefix=".tc-gridftp-spool-", suffix=".tcpart", dir=directory)
            os.unlink(path)  # nameless: it vanishes with the process, whatever happens
            self._fd = fd
            return
        base = Path(directory)
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
        else:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            self._save(RangeSet())
        self._spans = list(self.resumed.ranges)

    @property
    def restartable(self) -> bool:
        return self._record is not None

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        if offset < 0:
            raise InvalidWrite(f"negative offset {offset}")
        view = memoryview(data)
        if self.limit is not None and offset + len(view) > self.limit:
            raise SpoolFull(
                f"an upload of unknown size may spool at most {self.limit} bytes",
                hint="send ALLO <size> before STOR so the data goes straight to storage",
            )
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

    def durable(self) -> RangeSet:
        """Make what was written durable and return it (the restart marker)."""
        if self._record is None:
            return RangeSet()
        written = self.received()  # before the flush: only bytes written before it count
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            raise from_oserror(exc, "cannot flush the upload spool") from exc
        self._save(written)
        return written

    def copy_into(
        self, writer: Writer, stop: threading.Event | None = None, offset: int = 0, length: int | None = None
    ) -> None:
        """Write the spool's first ``length`` bytes (all the writer holds) into ``writer`` from ``offset`` on."""
        size = writer.size - offset if length is None else length
        pos = 0
        while pos < size:
            if stop is not None and stop.is_set():
                raise TransferAborted("transfer aborted while storing the spooled upload")
            n = min(COPY_BLOCK, size - pos)
            data = os.pread(self._fd, n, pos)
            if len(data) != n:
                raise InvalidWrite(f"upload spool is short at {pos}: {len(data)} of {n} bytes")
            writer.write(offset + pos, data)
            pos += n

    def close(self) -> None:
        try:
            os.close(self._fd)
        except OSError:
            pass

    def discard(self) -> None:
        """The upload is stored: the spool and its record go."""
        self.close()
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
