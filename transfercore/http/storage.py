"""Where an upload's bytes go until it is complete: the destination itself, or a durable spool.

A destination that can resume a write (restart model ``prefix`` or
``ranges``) takes the bytes directly: its writer's durable marker is the
offset the server reports.  One that cannot (restart model ``none``: its
writers make nothing durable before ``complete``) would leave every offset
at 0, and a client sending chunks would never advance.  Its uploads go to a
spool instead: a file per upload in a local directory, made durable with
``fdatasync`` and a fsynced record of its durable prefix (as ``serve``
spools uploads of unknown size).  The offsets reported are the spool's durable prefix; when
every byte has arrived (and the ``Repr-Digest``, if sent, matches the
spooled bytes) the spool is copied into a fresh writer of the destination,
which publishes it, and only then is the upload reported complete.  A crash
during that copy leaves the spool whole: the client, told by ``HEAD`` that
the last byte is still missing (:func:`spool_offset`), sends it again and
the copy runs again.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from ..contract import Driver, Writer
from ..driverkit import fsync_dir
from ..errors import InvalidWrite, RestartRejected, from_oserror
from ..ranges import RangeSet
from .records import GroupSync, valid_id

COPY_BLOCK = 4 << 20

class DirectStorage:
    """Uploads written straight into the destination's writers."""

    spooled = False

    def __init__(self, driver: Driver) -> None:
        self.driver = driver

    def held(self, upload_id: str, path: str) -> int:
        """The durable prefix the storage holds for the unfinished upload."""
        return self.driver.partial(path).prefix_end()

    def open(self, upload_id: str, path: str, size: int, offset: int) -> Writer:
        if offset:
            return self.driver.open_write(path, size, resume=RangeSet.span(0, offset))
        return self.driver.open_write(path, size)

    def discard(self, upload_id: str, path: str) -> None:
        self.driver.discard_partial(path)


class SpoolStorage:
    """Uploads spooled in ``directory`` (one data file and one record each), stored once complete."""

    spooled = True

    def __init__(self, driver: Driver, directory: str | os.PathLike[str]) -> None:
        self.driver = driver
        self.directory = Path(directory)
        missing = [d for d in (self.directory, *self.directory.parents) if not d.exists()]
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        # a spool whose directory's name a power cut could take would take reported offsets with it
        for made in reversed(missing):
            fsync_dir(str(made.parent))
        self._dir_sync = GroupSync(str(self.directory))

    def _paths(self, upload_id: str) -> tuple[Path, Path]:
        if not valid_id(upload_id):
            raise InvalidWrite(f"{upload_id!r} is not an upload id")
        return self.directory / f"{upload_id}.part", self.directory / f"{upload_id}.durable"

    def held(self, upload_id: str, path: str) -> int:
        data, record = self._paths(upload_id)
        try:
            recorded = int(json.loads(record.read_text())["durable"])
            return min(recorded, data.stat().st_size)
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def open(self, upload_id: str, path: str, size: int, offset: int) -> Writer:
        data, record = self._paths(upload_id)
        if offset:
            held = self.held(upload_id, path)
            if held < offset:
                raise RestartRejected(f"the spool of upload {upload_id} holds {held} durable bytes, not {offset}")
            flags = os.O_RDWR
        else:
            record.unlink(missing_ok=True)
            flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC
        try:
            fd = os.open(data, flags | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise from_oserror(exc, f"cannot open the spool of upload {upload_id}") from exc
        return SpoolWriter(self, self.driver, path, size, fd, record, offset)

    def discard(self, upload_id: str, path: str) -> None:
        data, record = self._paths(upload_id)
        # with what a crash left of a record being saved
        for name in (data, record, *self.directory.glob(f".{record.name}.*.tmp")):
            name.unlink(missing_ok=True)

    def save(self, record: Path, durable: int) -> None:
        tmp = record.with_name(f".{record.name}.{threading.get_ident()}.tmp")
        try:
            with open(tmp, "w") as f:
                json.dump({"durable": durable}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, record)
        except OSError as exc:
            raise from_oserror(exc, "cannot record the spool's durable prefix") from exc
        self._dir_sync.sync()


class SpoolWriter(Writer):
    """The writer of a spooled upload: its durable points are the spool's; ``complete`` stores it."""

    def __init__(self, spools: SpoolStorage, driver: Driver, path: str, size: int, fd: int, record: Path,
                 offset: int) -> None:
        self._spools = spools
        self._driver = driver
        self._path = path
        self._size = size
        self._fd = fd
        self._record = record
        self._resumed = RangeSet.span(0, offset) if offset else RangeSet()
        self._end = offset  # contiguous bytes written (appends arrive in order)
        self._recorded = offset

    @property
    def size(self) -> int:
        return self._size

    @property
    def resumed(self) -> RangeSet:
        return self._resumed

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        if offset > self._end or offset + len(data) > self._size:
            raise InvalidWrite(f"spool write at {offset} (+{len(data)}) outside 0-{self._end} of {self._size}")
        view = memoryview(data)
        done = 0
        while done < len(view):
            try:
                done += os.pwrite(self._fd, view[done:], offset + done)
            except OSError as exc:
                raise from_oserror(exc, "cannot write the upload spool") from exc
        self._end = max(self._end, offset + len(view))

    def durable(self) -> RangeSet:
        end = self._end  # before the flush: only bytes written before it count
        if end != self._recorded:
            try:
                os.fdatasync(self._fd)
            except OSError as exc:
                raise from_oserror(exc, "cannot flush the upload spool") from exc
            self._spools.save(self._record, end)
            self._recorded = end
        return RangeSet.span(0, end) if end else RangeSet()

    def read_durable(self, offset: int, buffer: bytearray | memoryview) -> None:
        view = memoryview(buffer)
        if offset + len(view) > self._recorded:
            raise InvalidWrite(f"read of {offset}+{len(view)} past the spool's durable {self._recorded}")
        done = 0
        while done < len(view):
            n = os.preadv(self._fd, [view[done:]], offset + done)
            if n <= 0:
                raise InvalidWrite(f"the upload spool is short at {offset + done}")
            done += n

    def complete(self) -> None:
        self.durable()  # a crash during the copy below finds the spool whole
        dest = self._driver.open_write(self._path, self._size)
        try:
            block = bytearray(COPY_BLOCK)
            for pos in range(0, self._size, COPY_BLOCK):
                n = min(COPY_BLOCK, self._size - pos)
                self.read_durable(pos, memoryview(block)[:n])
                dest.write(pos, bytes(block[:n]))
            dest.complete()
        except BaseException:
            dest.abort()
            raise
        os.close(self._fd)
        self._fd = -1
        self._spools.discard(self._record.stem, self._path)

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # its durable part stays for a resume
            self._fd = -1


def spool_offset(offset: int, length: int) -> int:
    """The offset to report for a spooled upload that is not yet stored: never its whole length.

    A client told the full length considers the upload done (tus); one byte
    short, it sends that byte again, and the request that completes the
    upload stores it.
    """
    return min(offset, max(length - 1, 0))
