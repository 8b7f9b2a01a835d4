"""The engine options of ``transfercore copy`` from its command line, and the
journal warning every copy command gives (single files, streams, trees)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import OptionError
from ..sizes import parse_size


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


def warn_damage(damage: Any) -> None:
    """The journal's unacknowledged damage, said by every command until acknowledged."""
    if damage is not None:
        print(f"transfercore: warning: {damage.warning()}", file=sys.stderr)
