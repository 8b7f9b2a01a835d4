"""``transfercore copy SRC DST``: one resumable, verified transfer.

Running the same command again after any interruption resumes from the
journal's durable marker.  Output: a progress bar on a terminal, plain lines
otherwise, one JSON event per line with ``--json``, nothing but errors with
``--quiet``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import OptionError, TransferAborted, TransferCoreError, UnsizedSource
from ..journal import Journal
from ..sizes import format_size, parse_size
from . import error_line, interrupted_message, report_error
from .copy_options import build_options, warn_damage
from .copy_output import RichBar, listener_for
from .exitcodes import ExitCode, exit_code_for
from .stopping import Stop


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
