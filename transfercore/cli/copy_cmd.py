"""``transfercore copy SRC DST``: one resumable, verified transfer.

Running the same command again after any interruption resumes from the
journal's durable marker.  Output: a progress bar on a terminal, plain lines
otherwise, one JSON event per line with ``--json``, nothing but errors with
``--quiet``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from ..errors import (
    ChecksumMismatch,
    OptionError,
    SizeSyntaxError,
    TransferAborted,
    TransferCoreError,
    UnknownChecksum,
)
from ..journal import Journal
from ..sizes import format_size, parse_size
from .exitcodes import ExitCode


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "copy",
        help="copy one object, resuming an interrupted copy and verifying the result",
        description="Copy SRC to DST.  Run the same command again after any interruption to resume.",
    )
    parser.add_argument("source", metavar="SRC", help="source URL or local path")
    parser.add_argument("destination", metavar="DST", help="destination URL or local path")
    parser.add_argument("--streams", default="4", metavar="N", help="blocks in flight at once (default 4)")
    parser.add_argument(
        "--block-size", metavar="SIZE", help="block size, e.g. 4M (default: the destination's preferred size)"
    )
    parser.add_argument(
        "--marker-interval",
        default="5",
        metavar="SECONDS",
        help="take a restart marker at least every SECONDS (default 5; 0 turns it off)",
    )
    parser.add_argument(
        "--marker-bytes",
        default="256M",
        metavar="SIZE",
        help="take a restart marker at least every SIZE bytes written (default 256M; 0 turns it off)",
    )
    parser.add_argument(
        "--checksum",
        default="crc32c",
        metavar="ALG",
        help="verify with MD5, ADLER32, CRC32C (default), SHA256, or 'none'",
    )
    parser.add_argument("--no-resume", action="store_true", help="start from zero even if a partial copy exists")
    parser.add_argument("--journal", metavar="PATH", help="journal file (default: $XDG_STATE_HOME/transfercore)")
    from . import tree_cmd

    tree_cmd.add_arguments(parser)
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON event per line")
    output.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    parser.set_defaults(func=run)


def build_options(args: argparse.Namespace) -> Any:
    """The engine options from the command line; bad values raise the project's errors."""
    from ..engine import MarkerPolicy, TransferOptions

    try:
        streams = int(args.streams)
    except ValueError:
        raise OptionError(f"--streams {args.streams!r} is not a whole number", hint="e.g. --streams 4") from None
    try:
        interval = float(args.marker_interval)
    except ValueError:
        raise OptionError(
            f"--marker-interval {args.marker_interval!r} is not a number of seconds", hint="e.g. --marker-interval 5"
        ) from None
    block_size = parse_size(args.block_size, what="--block-size", minimum=1) if args.block_size else None
    marker_bytes = parse_size(args.marker_bytes, what="--marker-bytes")
    return TransferOptions(
        streams=streams,
        block_size=block_size,
        marker_policy=MarkerPolicy(interval=interval, bytes=marker_bytes),
        checksum=args.checksum,
        resume=not args.no_resume,
    )


def _fail(message: object, code: ExitCode) -> int:
    print(f"transfercore: error: {message}", file=sys.stderr)
    return int(code)


def run(args: argparse.Namespace) -> int:
    from ..engine import Transfer

    if getattr(args, "recursive", False) or getattr(args, "files_from", None):
        from . import tree_cmd

        return tree_cmd.run(args)
    try:
        options = build_options(args)
    except (OptionError, SizeSyntaxError, UnknownChecksum) as exc:
        return _fail(exc, ExitCode.USAGE)
    listener: Callable[[Any], None] | None
    if args.json:
        listener = JsonLines(sys.stdout)
    elif args.quiet:
        listener = None
    elif sys.stderr.isatty():
        listener = RichBar()
    else:
        listener = PlainLines(sys.stdout)
    with Journal(args.journal) as journal:
        transfer = Transfer(args.source, args.destination, options, journal=journal)
        if listener is not None:
            transfer.add_listener(listener)
        previous = signal.signal(signal.SIGTERM, lambda *_: transfer.cancel())
        try:
            transfer.run()
        except ChecksumMismatch as exc:
            return _fail(exc, ExitCode.CHECKSUM_MISMATCH)
        except TransferAborted as exc:
            return _fail(exc, ExitCode.INTERRUPTED)
        except TransferCoreError as exc:
            return _fail(exc, ExitCode.FAILED)
        finally:
            signal.signal(signal.SIGTERM, previous)
            if isinstance(listener, RichBar):
                listener.close()
    return int(ExitCode.OK)


# -- renderers ---------------------------------------------------------------------


class JsonLines:
    """One JSON object per event, flushed, so scripts can follow a transfer."""

    def __init__(self, out: TextIO) -> None:
        self.out: TextIO | None = out

    def __call__(self, event: Any) -> None:
        if self.out is None:
            return
        try:
            self.out.write(json.dumps(event.to_dict(), sort_keys=True) + "\n")
            self.out.flush()
        except BrokenPipeError:
            # The reader went away (e.g. piped into head): the copy goes on silently.
            self.out = None


def _rate(value: float) -> str:
    return f"{format_size(value)}/s"


class PlainLines:
    """Readable lines for logs: at most one progress line every few seconds."""

    EVERY = 5.0

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._last = 0.0

    def _print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def __call__(self, event: Any) -> None:
        kind = event.kind
        if kind == "start":
            self._print(
                f"copying {event.source} -> {event.destination} ({format_size(event.size)}, "
                f"{event.streams} streams, checksum {event.checksum or 'none'})"
            )
        elif kind == "resumed":
            self._print(f"resuming: {format_size(event.bytes)} already durable at the destination")
        elif kind == "restart":
            self._print(f"starting from zero: {event.reason}")
        elif kind == "progress":
            now = time.monotonic()
            if now - self._last >= self.EVERY:
                self._last = now
                eta = f", ETA {event.eta:.0f} s" if event.eta is not None else ""
                self._print(
                    f"{format_size(event.bytes_done)} of {format_size(event.size)} "
                    f"at {_rate(event.rate)}{eta}; durable {format_size(event.durable_bytes)}"
                )
        elif kind == "verify":
            self._print(f"verifying {event.algorithm.upper()} ({event.method})")
        elif kind == "done":
            checksum = f"; {event.checksum_algorithm.upper()} {event.checksum}" if event.checksum else ""
            self._print(
                f"done: {format_size(event.size)} in {event.elapsed:.1f} s "
                f"({format_size(event.bytes_sent)} sent, {format_size(event.bytes_resumed)} resumed){checksum}"
            )
        elif kind == "error" and event.resumable and event.durable_bytes:
            self._print(f"stopped with {format_size(event.durable_bytes)} durable; run the same command again to resume")


class RichBar:
    """A progress bar on the terminal: bytes, rate, ETA and durable bytes."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            TextColumn("durable {task.fields[durable]}"),
            console=self.console,
            transient=False,
        )
        self.task: Any = None

    def __call__(self, event: Any) -> None:
        kind = event.kind
        if kind == "start":
            self.progress.start()
            self.task = self.progress.add_task("copy", total=event.size or 1, durable=format_size(0))
        elif kind == "resumed":
            self.console.print(f"resuming: {format_size(event.bytes)} already durable at the destination")
            self.progress.update(self.task, completed=event.bytes, durable=format_size(event.bytes))
        elif kind == "restart":
            self.console.print(f"starting from zero: {event.reason}")
        elif kind == "progress":
            self.progress.update(self.task, completed=event.bytes_done, durable=format_size(event.durable_bytes))
        elif kind == "marker" and self.task is not None:
            self.progress.update(self.task, durable=format_size(event.durable_bytes))
        elif kind == "verify" and self.task is not None:
            self.progress.update(self.task, description=f"verify {event.algorithm}")
        elif kind in ("done", "error"):
            self.close()
            if kind == "done":
                checksum = f", {event.checksum_algorithm.upper()} {event.checksum}" if event.checksum else ""
                self.console.print(f"done: {format_size(event.size)} in {event.elapsed:.1f} s{checksum}")

    def close(self) -> None:
        self.progress.stop()
