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

from ..errors import OptionError, TransferAborted, TransferCoreError, UnsizedSource
from ..journal import Journal
from ..sizes import format_size, parse_size
from . import error_line, interrupted_message, report_error, silence_stdout
from .exitcodes import ExitCode, exit_code_for


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
    parser.add_argument(
        "--force", action="store_true", help="copy again even when a finished copy's destination still matches"
    )
    parser.add_argument("--journal", metavar="PATH", help="journal file (default: $XDG_STATE_HOME/transfercore)")
    parser.add_argument(
        "--max-size",
        metavar="SIZE",
        help="a source of unknown size (FIFO, pipe, '-' for stdin, /proc file) is read to its end first; refuse "
        "it past SIZE bytes.  Devices are read only with --max-size (a device may never end, as /dev/zero)",
    )
    from . import tree_cmd

    tree_cmd.add_arguments(parser)
    from . import copy_ranges

    copy_ranges.add_arguments(parser)
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
        force=args.force,
    )


def listener_for(args: argparse.Namespace, transfer: Any) -> Callable[[Any], None] | None:
    if args.json:
        return JsonLines(sys.stdout, lambda: transfer.transfer_id)
    if args.quiet:
        return None
    if sys.stderr.isatty():
        return RichBar()
    return PlainLines(sys.stdout)


class Stop:
    """Ctrl-C and SIGTERM both ask the transfer to stop at its next step (a
    marker is saved); a second Ctrl-C stops at once."""

    def __init__(self, cancel: Callable[[], None]) -> None:
        self.cancel = cancel
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> Stop:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        self.cancel()
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def warn_damage(damage: Any) -> None:
    """The journal's unacknowledged damage, said by every command until acknowledged."""
    if damage is not None:
        print(f"transfercore: warning: {damage.warning()}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "recursive", False) or getattr(args, "files_from", None):
        from . import tree_cmd

        return tree_cmd.run(args)
    if getattr(args, "metrics_port", None) is not None:
        raise OptionError("--metrics-port needs -r", hint="metrics are served for tree campaigns")
    from . import copy_ranges

    if copy_ranges.wanted(args):
        return copy_ranges.run(args)
    options = build_options(args)
    max_size = parse_size(args.max_size, what="--max-size") if args.max_size else None
    with Journal(args.journal, create_directory=args.journal is None) as journal:
        warn_damage(journal.unacknowledged)
        from . import copy_stream

        if args.source == "-" or copy_stream.special_file(args.source):
            # Never opened by the engine first: a FIFO opened twice lets its writer
            # in between and then leaves it writing to a closed pipe.
            return copy_stream.run(args, options, max_size, journal)
        try:
            return _copy_one(args, options, journal)
        except UnsizedSource:
            if copy_stream.local_path(args.source) is None:
                raise
            # Refused before anything was written (a pseudo-file): read it to its end instead.
            return copy_stream.run(args, options, max_size, journal)


def _copy_one(args: argparse.Namespace, options: Any, journal: Journal) -> int:
    from ..engine import Failed, Interrupted, Transfer

    transfer = Transfer(args.source, args.destination, options, journal=journal)
    listener = listener_for(args, transfer)
    if listener is not None:
        transfer.add_listener(listener)
    durable: list[int] = []
    transfer.add_listener(lambda event: durable.append(event.durable_bytes) if isinstance(event, Interrupted) else None)
    failed: list[Any] = []
    transfer.add_listener(lambda event: failed.append(event) if isinstance(event, Failed) else None)
    try:
        with Stop(transfer.cancel):
            transfer.run()
    except UnsizedSource:
        raise
    except (TransferAborted, KeyboardInterrupt):
        print(f"transfercore: {interrupted_message(durable[-1] if durable else None)}", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except TransferCoreError as exc:
        if failed and failed[-1].resumable and failed[-1].durable_bytes:
            return _report_kept(exc, failed[-1].durable_bytes)
        return report_error(exc)
    finally:
        if isinstance(listener, RichBar):
            listener.close()
    return int(ExitCode.OK)


def _report_kept(exc: TransferCoreError, durable_bytes: int) -> int:
    """The one error line, saying what the destination keeps for the rerun (a full disk among others)."""
    line, text = error_line(exc), Exception.__str__(exc)
    rest = line[len(text):] if line.startswith(text) else ""
    print(f"transfercore: error: {text}; {format_size(durable_bytes)} durable at the destination is kept{rest}",
          file=sys.stderr)
    return int(exit_code_for(exc))


# -- renderers ---------------------------------------------------------------------


class JsonLines:
    """One JSON object per event, flushed, so scripts can follow a transfer."""

    def __init__(self, out: TextIO, transfer_id: Callable[[], int | None] = lambda: None) -> None:
        self.out: TextIO | None = out
        self._transfer_id = transfer_id

    def __call__(self, event: Any) -> None:
        from ..engine.events import envelope

        if self.out is None:
            return
        try:
            self.out.write(json.dumps(envelope(event, self._transfer_id()), sort_keys=True) + "\n")
            self.out.flush()
        except BrokenPipeError:
            # The reader went away (e.g. piped into head): the copy goes on silently.
            self.out = None
            silence_stdout()


def _rate(value: float) -> str:
    return f"{format_size(value)}/s"


def _resumed_line(event: Any) -> str:
    line = f"resuming: {format_size(event.bytes)} already durable at the destination"
    return f"{line} ({event.note})" if event.note else line


def _up_to_date_line(event: Any) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.finished))
    checksum = f", {event.checksum_algorithm.upper()} {event.checksum}" if event.checksum else ""
    return (
        f"up to date: copied in full at {when}{checksum}, and neither end changed since; nothing to do "
        "(--force copies again)"
    )


class PlainLines:
    """Readable lines for logs: at most one progress line every few seconds."""

    EVERY = 5.0

    def __init__(self, out: TextIO) -> None:
        self.out: TextIO | None = out
        self._last = 0.0

    def _print(self, text: str) -> None:
        if self.out is None:
            return
        try:
            self.out.write(text + "\n")
            self.out.flush()
        except BrokenPipeError:
            self.out = None  # the reader went away: the copy goes on silently
            silence_stdout()

    def __call__(self, event: Any) -> None:
        kind = event.kind
        if kind == "start":
            self._print(
                f"copying {event.source} -> {event.destination} ({format_size(event.size)}, "
                f"{event.streams} streams, checksum {event.checksum or 'none'})"
            )
        elif kind == "resumed":
            self._print(_resumed_line(event))
        elif kind == "restart":
            self._print(f"starting from zero: {event.reason}")
        elif kind == "up-to-date":
            self._print(_up_to_date_line(event))
        elif kind == "verify-progress":
            now = time.monotonic()
            if now - self._last >= self.EVERY:
                self._last = now
                self._print(f"verified {format_size(event.bytes_verified)} of {format_size(event.size)}")
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
            self.console.print(_resumed_line(event))
            self.progress.update(self.task, completed=event.bytes, durable=format_size(event.bytes))
        elif kind == "restart":
            self.console.print(f"starting from zero: {event.reason}")
        elif kind == "up-to-date":
            self.console.print(_up_to_date_line(event))
        elif kind == "verify-progress" and self.task is not None:
            self.progress.update(self.task, completed=event.bytes_verified)
        elif kind == "progress":
            self.progress.update(self.task, completed=event.bytes_done, durable=format_size(event.durable_bytes))
        elif kind == "marker" and self.task is not None:
            self.progress.update(self.task, durable=format_size(event.durable_bytes))
        elif kind == "verify" and self.task is not None:
            self.progress.update(self.task, description=f"verify {event.algorithm}")
        elif kind in ("done", "error", "interrupted"):
            self.close()
            if kind == "done":
                checksum = f", {event.checksum_algorithm.upper()} {event.checksum}" if event.checksum else ""
                self.console.print(f"done: {format_size(event.size)} in {event.elapsed:.1f} s{checksum}")

    def close(self) -> None:
        self.progress.stop()
