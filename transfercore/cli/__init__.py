"""The ``transfercore`` command.

Each subcommand lives in its own module ``<name>_cmd`` exposing
``register(subparsers)``; this module only assembles them and turns the
project's errors into one clear line and a documented exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ..errors import TransferCoreError
from .exitcodes import ExitCode

SUBCOMMANDS: tuple[str, ...] = ("drivers", "copy", "status", "checksum", "conformance", "serve", "globus_server")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="transfercore",
        description="Resumable, verified data transfers between storage drivers.",
    )
    parser.add_argument("--version", action="version", version=f"transfercore {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in SUBCOMMANDS:
        module = importlib.import_module(f".{name}_cmd", __name__)
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except TransferCoreError as exc:
        print(f"transfercore: error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", ExitCode.FAILED))
    except KeyboardInterrupt:
        print("transfercore: interrupted; the resume state is on disk", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
