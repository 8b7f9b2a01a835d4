"""Sources of unknown size: read to their end into a spool file first.

A FIFO, a pipe, standard input, a device or a pseudo-file (``/proc``,
``/sys``: size 0, yet content) cannot be read by position, and its size is
known only at its end.  The engine moves objects of a known size, so such a
source is read once, in order, to its end into a spool file beside the
destination, with the checksum of what was read; the spool is read back and
must give the same checksum, and is then copied like any file (verified
against the destination before publishing).  Nothing of it can resume from
the source side: an interrupted read is lost with the source's position.

Every wait is a ``poll`` of at most :data:`POLL_SECONDS`, so ``stop`` (set by
Ctrl-C or SIGTERM) ends a read that waits for a writer that never comes.
"""

from __future__ import annotations

import os
import select
import tempfile
import threading

import attrs

from ..checksums import Hasher
from ..errors import ChecksumMismatch, TransferAborted, UnsizedSource, from_oserror

#: Bytes asked of the source per read.
CHUNK = 1 << 20
#: Longest wait for the source before looking at ``stop`` again.
POLL_SECONDS = 0.2
#: What the spool file's name ends with.
SPOOL_SUFFIX = ".tcstream"


@attrs.frozen
class Spooled:
    """A source read to its end: where its bytes are, how many, and their checksum."""

    path: str
    size: int
    algorithm: str | None
    checksum: str | None


def spool(
    fd: int,
    directory: str,
    name: str,
    *,
    display: str,
    stop: threading.Event,
    max_size: int | None = None,
    algorithm: str | None = None,
) -> Spooled:
    """Read ``fd`` to its end into a new spool file in ``directory``.

    The caller removes the file (``Spooled.path``) when done with it; on an
    error or a stop it is removed here.  More than ``max_size`` bytes is an
    :class:`~transfercore.errors.UnsizedSource` error; ``stop`` raises
    :class:`~transfercore.errors.TransferAborted`.
    """
    try:
        out, path = tempfile.mkstemp(prefix=f".{name}.", suffix=SPOOL_SUFFIX, dir=directory)
    except OSError as exc:
        raise from_oserror(exc, f"cannot create a spool file for {display} in {directory}") from exc
    try:
        with os.fdopen(out, "wb", buffering=0) as sink:
            size, checksum = _pump(fd, sink.fileno(), display, stop, max_size, algorithm)
        if checksum is not None:
            assert algorithm is not None
            again = _file_sum(path, algorithm)
            if again != checksum:
                raise ChecksumMismatch(algorithm.upper(), checksum, again,
                                       hint=f"the spool file of {display} does not hold what was read; nothing "
                                       "was published: check the storage of the spool's directory")
    except BaseException:
        try:
            os.unlink(path)
        except OSError:
            pass
        raise
    return Spooled(path=path, size=size, algorithm=algorithm, checksum=checksum)


def _pump(
    fd: int, out: int, display: str, stop: threading.Event, max_size: int | None, algorithm: str | None
) -> tuple[int, str | None]:
    hasher = Hasher(algorithm) if algorithm else None
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    size = 0
    while True:
        if stop.is_set():
            raise TransferAborted(
                f"stopped while reading {display} ({size} bytes read); nothing was published",
                hint=f"{display} cannot be read again from where it stopped: run the same command again to copy "
                "it from its start",
            )
        if not poller.poll(int(POLL_SECONDS * 1000)):
            continue
        try:
            data = os.read(fd, CHUNK)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError as exc:
            raise from_oserror(exc, f"cannot read {display} after {size} bytes") from exc
        if not data:
            return size, hasher.hexdigest() if hasher is not None else None
        size += len(data)
        if max_size is not None and size > max_size:
            raise UnsizedSource(
                f"{display} gave more than --max-size {max_size} bytes; nothing was published",
                hint="give a larger --max-size if the source really ends",
            )
        if hasher is not None:
            hasher.update(data)
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(out, view):]
            except OSError as exc:
                raise from_oserror(exc, f"cannot write the spool file of {display}") from exc


def _file_sum(path: str, algorithm: str) -> str:
    hasher = Hasher(algorithm)
    with open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()
