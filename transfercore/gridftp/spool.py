"""Uploads of unknown size (STOR without ALLO) are spooled, then stored.

A driver writer needs the final size up front, and a client that sends no
``ALLO`` (plain FTP clients, a third-party transfer whose source cannot be
sized) gives none.  Such an upload is received into a temporary spool file;
when the data end, the size is known and the spool is copied into a driver
writer and completed.  No restart marker is sent for a spooled upload:
nothing is durable at the destination until the copy completes.

The spool never lives outside the destination's storage: it is a nameless
file in the destination's own directory when the driver has local paths, and
anonymous memory otherwise; either way it is bounded (``limit``), so a client
cannot fill a disk by never sending the end of an upload.
"""

from __future__ import annotations

import os
import tempfile
import threading

from ..contract import Writer
from ..errors import InvalidWrite, from_oserror
from ..ranges import RangeSet

COPY_BLOCK = 4 * 1024 * 1024


class SpoolFull(InvalidWrite):
    """The upload is larger than the spool may hold."""


class Spool:
    """A sparse temporary file accepting positional writes from several threads."""

    def __init__(self, directory: str | None = None, *, limit: int | None = None) -> None:
        if directory is None:
            fd = os.memfd_create("tc-gridftp-spool", os.MFD_CLOEXEC)
        else:
            fd, path = tempfile.mkstemp(prefix=".tc-gridftp-spool-", dir=directory)
            os.unlink(path)  # nameless: it vanishes with the process, whatever happens
        self._fd = fd
        self.limit = limit
        self._lock = threading.Lock()
        self._spans: list[tuple[int, int]] = []

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
            self._spans.append((offset, offset + len(view)))

    def received(self) -> RangeSet:
        with self._lock:
            return RangeSet.of(*self._spans)

    def copy_into(self, writer: Writer, stop: threading.Event | None = None) -> None:
        size = writer.size
        pos = 0
        while pos < size:
            if stop is not None and stop.is_set():
                from ..errors import TransferAborted

                raise TransferAborted("transfer aborted while storing the spooled upload")
            n = min(COPY_BLOCK, size - pos)
            data = os.pread(self._fd, n, pos)
            if len(data) != n:
                raise InvalidWrite(f"upload spool is short at {pos}: {len(data)} of {n} bytes")
            writer.write(pos, data)
            pos += n

    def close(self) -> None:
        try:
            os.close(self._fd)
        except OSError:
            pass
