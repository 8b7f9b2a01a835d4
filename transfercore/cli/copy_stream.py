"""``transfercore copy`` of a source whose size cannot be known in advance.

A FIFO, ``-`` (standard input), a device or a pseudo-file (``/proc``) is read
to its end into a spool file first (:mod:`transfercore.engine.stream`), then
the spool is copied like any file.  Such a copy cannot resume from the
source side: it keeps no journal row, and an interrupted one discards its
partial, so a rerun reads the source again from its start.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import tempfile
import threading
import time
from typing import Any

import attrs

from ..engine.stream import Spooled, spool
from ..errors import TransferAborted, TransferCoreError, UnsizedSource, from_oserror
from ..journal import Journal
from ..sizes import format_size
from . import report_error
from .copy_output import RichBar, listener_for
from .exitcodes import ExitCode
from .stopping import Stop


def local_path(source: str) -> str | None:
    """The local file of ``source`` when its driver has one (posix), else None."""
    from ..location import parse_location
    from ..registry import open_location

    try:
        if parse_location(source).driver not in ("posix", "file"):
            return None  # only a local file system has local paths (and no other driver is opened twice)
        endpoint = open_location(source)
    except TransferCoreError:
        return None
    try:
        local_path = getattr(endpoint.driver, "local_path", None)
        return str(local_path(endpoint.path)) if local_path is not None else None
    finally:
        endpoint.driver.close()


def special_file(source: str) -> bool:
    """Whether ``source`` is a local FIFO, device or socket (known without opening it)."""
    local = local_path(source)
    if local is None:
        return False
    try:
        mode = os.stat(local).st_mode
    except OSError:
        return False  # the transfer reports it
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _spool_directory(destination: str) -> tuple[str, str]:
    """Where to spool a source for ``destination``: beside it when it is local
    (same file system, no extra space elsewhere), else the temporary directory."""
    local = local_path(destination)
    if local is None:
        return tempfile.gettempdir(), "transfercore"
    return os.path.dirname(os.path.abspath(local)) or ".", os.path.basename(local)


def _open_unsized(source: str, max_size: int | None) -> tuple[int, str, bool]:
    """The descriptor to read a source of unknown size from, its name, and whether to close it."""
    if source == "-":
        return sys.stdin.fileno(), "standard input", False
    local = local_path(source)
    assert local is not None
    try:
        # O_NONBLOCK: a FIFO without a writer must not hold open() (which no signal ends).
        fd = os.open(local, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise from_oserror(exc, f"cannot open {source} for reading") from exc
    mode = os.fstat(fd).st_mode
    if (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)) and max_size is None:
        os.close(fd)
        raise UnsizedSource(
            f"{source} is a device: it may never end (as /dev/zero does), so it is not read without a limit; "
            "nothing was written",
            hint="give --max-size SIZE to read it to its end, refusing it past SIZE bytes",
        )
    return fd, source, True


def run(args: argparse.Namespace, options: Any, max_size: int | None, journal: Journal) -> int:
    """Read a source of unknown size to its end into a spool file, then copy that
    (see :mod:`transfercore.engine.stream`).  Not resumable from the source side,
    so no journal row: an interrupted copy starts again from the source's start.
    The destination is held like any copy's (a second run of it is refused
    before it consumes the source)."""
    # Held before the source is opened: a refused run must not open a FIFO
    # (its writer would get in, then meet a closed pipe).
    lock = journal.claim("standard input" if args.source == "-" else args.source, _object_url(args.destination))
    try:
        fd, display, close = _open_unsized(args.source, max_size)
        try:
            spooled = _read(args, options, max_size, fd, display)
        finally:
            if close:
                os.close(fd)
        if spooled is None:
            return int(ExitCode.INTERRUPTED)
        try:
            return _copy_spool(args, options, spooled, display)
        finally:
            try:
                os.unlink(spooled.path)
            except OSError:
                pass
    finally:
        lock.release()


def _object_url(destination: str) -> str:
    """The destination as the engine's run lock names it (without driver options)."""
    from ..registry import open_location

    endpoint = open_location(destination)
    try:
        return str(attrs.evolve(endpoint.location, options=()))
    finally:
        endpoint.driver.close()


def _read(args: argparse.Namespace, options: Any, max_size: int | None, fd: int, display: str) -> Spooled | None:
    """The source read to its end, or None when Ctrl-C or SIGTERM stopped the reading (said here)."""
    stop = threading.Event()
    with Stop(stop.set):
        directory, name = _spool_directory(args.destination)
        _say(args, {"event": "source-read", "source": display, "resumable": False},
             f"reading {display} to its end (its size cannot be known in advance, so this copy cannot "
             "resume from the source side)")
        try:
            return spool(fd, directory, name, display=display, stop=stop, max_size=max_size,
                         algorithm=options.checksum)
        except (TransferAborted, KeyboardInterrupt) as exc:
            print(f"transfercore: {exc}" if isinstance(exc, TransferAborted) else
                  f"transfercore: interrupted while reading {display}; nothing was published",
                  file=sys.stderr)
            return None


def _copy_spool(args: argparse.Namespace, options: Any, spooled: Spooled, display: str) -> int:
    from ..engine import Started, Transfer

    checksum = f", {spooled.algorithm.upper()} {spooled.checksum}" if spooled.algorithm else ""
    _say(args, {"event": "source-done", "source": display, "bytes": spooled.size,
                "checksum_algorithm": spooled.algorithm, "checksum": spooled.checksum},
         f"read {format_size(spooled.size)} from {display}{checksum}")
    transfer = Transfer(spooled.path, args.destination, attrs.evolve(options, resume=False))
    listener = listener_for(args, transfer)
    if listener is not None:
        renderer = listener

        def named(event: Any) -> None:
            # The spool's name means nothing to the user: the start names the real source.
            renderer(attrs.evolve(event, source=display) if isinstance(event, Started) else event)

        transfer.add_listener(named)
    try:
        with Stop(transfer.cancel):
            transfer.run()
    except (TransferAborted, KeyboardInterrupt):
        _discard_partial(args.destination)
        print(f"transfercore: interrupted; {display} cannot be read again from where it stopped, so nothing "
              "was kept: run the same command again to copy it from its start", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except TransferCoreError as exc:
        _discard_partial(args.destination)
        return report_error(exc)
    finally:
        if isinstance(listener, RichBar):
            listener.close()
    return int(ExitCode.OK)


def _discard_partial(destination: str) -> None:
    """A partial copy of a spool is worth nothing: the spool is gone with this run."""
    from ..registry import open_location

    try:
        endpoint = open_location(destination)
        try:
            endpoint.driver.discard_partial(endpoint.path)
        finally:
            endpoint.driver.close()
    except TransferCoreError:
        pass


def _say(args: argparse.Namespace, doc: dict[str, Any], text: str) -> None:
    if args.json:
        from ..engine.events import SCHEMA_VERSION

        line = doc | {"schema": SCHEMA_VERSION, "time": round(time.time(), 6), "transfer_id": None}
        print(json.dumps(line, sort_keys=True), flush=True)
    elif not args.quiet:
        print(text, flush=True)
