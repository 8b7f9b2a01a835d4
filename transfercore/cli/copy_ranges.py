"""``transfercore copy BIG DST --ranges N`` (or ``--range-size``,
``--scheduler``, or ``--ranges-above`` with the file above it): one object cut into ranges, each copied by an
independent writer, in threads of this process or on Dask workers, then
published once (see :mod:`transfercore.campaign.rangecopy`).

No journal: what each range made durable is recorded at the destination,
and a rerun of the same command resumes from there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ..errors import OptionError, TransferAborted, TransferCoreError
from ..sizes import parse_size
from . import interrupted_message, report_error
from .exitcodes import ExitCode


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("one large file by ranges")
    group.add_argument("--ranges", metavar="N",
                       help="cut the file into N ranges, each copied by its own writer (in --range-workers "
                            "threads, or on the Dask workers of --scheduler) and published once; needs a "
                            "destination that takes several writers (posix)")
    group.add_argument("--range-size", metavar="SIZE",
                       help="instead of --ranges N, ranges of SIZE bytes (default 256M)")
    group.add_argument("--ranges-above", metavar="SIZE",
                       help="copy files of at least SIZE by ranges when the destination can: in a tree "
                            "copy (-r) by default from 1G (0: never); a single file only when this, "
                            "--ranges, --range-size or --scheduler is given")
    group.add_argument("--range-workers", metavar="N",
                       help="ranges copied at once by this process without --scheduler (default: CPUs, "
                            "at most 8)")


def _whole(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise OptionError(f"{what} {text!r} is not a whole number", hint=f"e.g. {what} 4") from None
    if value < 1:
        raise OptionError(f"{what} {value} must be at least 1")
    return value


def wanted(args: argparse.Namespace) -> bool:
    """Whether this single-file copy goes by ranges."""
    if args.ranges or args.range_size or getattr(args, "scheduler", None):
        return True
    # A single file goes by ranges only when asked: that path keeps no journal
    # row and prints its own events, which a plain `copy` must not change under
    # a user's scripts.
    threshold = parse_size(args.ranges_above, what="--ranges-above") if args.ranges_above else 0
    if not threshold or args.source == "-":
        return False
    from ..checksums import canonical

    if args.checksum.lower() == "none" or canonical(args.checksum) != "crc32c":
        return False  # ranges are verified by CRC32C only; the engine verifies with the others
    from ..registry import open_location

    try:
        src = open_location(args.source)
        dst = open_location(args.destination)
        if not dst.driver.capabilities().range_writers:
            return False
        info = src.driver.stat(src.path)
    except (TransferCoreError, OSError, ValueError):
        return False  # the ordinary copy says what is wrong
    return not info.is_dir and info.size >= threshold


def run(args: argparse.Namespace) -> int:
    from ..campaign import rangecopy
    from ..checksums import canonical

    if args.checksum.lower() == "none" or canonical(args.checksum) != "crc32c":
        raise OptionError(f"a copy by ranges is verified with CRC32C, not {args.checksum}",
                          hint="leave --checksum at its default, or copy without --ranges/--scheduler")
    count = _whole(args.ranges, "--ranges") if args.ranges else None
    range_size = parse_size(args.range_size, what="--range-size", minimum=1) if args.range_size else None
    if count is not None and range_size is not None:
        raise OptionError("give --ranges or --range-size, not both")
    block = parse_size(args.block_size, what="--block-size", minimum=1) if args.block_size else rangecopy.DEFAULT_BLOCK
    marker_bytes = (parse_size(args.marker_bytes, what="--marker-bytes") if args.marker_bytes != "256M"
                    else rangecopy.DEFAULT_MARKER_BYTES)
    workers = (_whole(args.range_workers, "--range-workers") if args.range_workers
               else min(8, os.cpu_count() or 1))

    def emit(event: dict[str, Any]) -> None:
        if args.json:
            print(json.dumps(event, sort_keys=True), flush=True)
        elif not args.quiet and event["event"] == "ranges-planned" and event["durable_bytes"]:
            print(f"resuming: {event['durable_bytes']} bytes already durable at the destination", flush=True)

    executor = None
    try:
        if getattr(args, "scheduler", None):
            from ..campaign.dask_executor import DaskExecutor

            executor = DaskExecutor.connect(args.scheduler)
            runner: Any = rangecopy.run_on_dask(executor.client)
        else:
            runner = rangecopy.LocalRanges(workers)
        result = rangecopy.copy_by_ranges(args.source, args.destination, runner, count=count,
                                          range_size=range_size, block=block, marker_bytes=marker_bytes,
                                          resume=not args.no_resume, force=args.force, on_event=emit)
    except (TransferAborted, KeyboardInterrupt):
        print(f"transfercore: {interrupted_message(None)}", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except TransferCoreError as exc:
        return report_error(exc)
    finally:
        if executor is not None:
            executor.shutdown()
    if not args.json and not args.quiet:
        print(rangecopy.describe(result), flush=True)
    return int(ExitCode.OK)
