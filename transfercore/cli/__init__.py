"""The ``transfercore`` command.

Each subcommand lives in its own module ``<name>_cmd`` exposing
``register(subparsers)``; this module only assembles them and turns the
project's errors into one clear line and a documented exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from ..errors import RESUME_HINT, TransferCoreError
from .exitcodes import ExitCode, exit_code_for

SUBCOMMANDS: tuple[str, ...] = ("drivers", "copy", "status", "checksum", "conformance", "serve", "serve_http", "globus_server")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; with ``command`` (a subcommand's name, as
    typed), only that subcommand's.

    Each subcommand's module imports what it runs with, and a parser of all
    of them imported everything (the servers' configuration, the conformance
    kit): about 60 ms of a ``copy``'s start-up, paid again by every short
    copy.  The full parser still answers ``--help``, ``--version`` and any
    word that is not a subcommand."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="transfercore",
        description="Resumable, verified data transfers between storage drivers.",
    )
    parser.add_argument("--version", action="version", version=f"transfercore {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    module_name = command.replace("-", "_") if command is not None else None
    names = (module_name,) if module_name in SUBCOMMANDS else SUBCOMMANDS
    for name in names:
        module = importlib.import_module(f".{name}_cmd", __name__)
        module.register(subparsers)
    return parser


INTERRUPTED_MESSAGE = "interrupted; run the same command again to resume"


def interrupted_message(durable_bytes: int | None) -> str:
    """The one line printed for Ctrl-C and SIGTERM alike."""
    if durable_bytes is None:
        return INTERRUPTED_MESSAGE
    from ..sizes import format_size

    return f"interrupted with {format_size(durable_bytes)} durable; run the same command again to resume"


#: The library's words for "run it again to resume" and the command line's.
_CLI_HINTS = {RESUME_HINT: "run the same command again to resume", "with resume turned off": "with --no-resume"}


def error_line(exc: BaseException) -> str:
    """``exc`` as the command line shows it: the library's hints in the command line's words."""
    if isinstance(exc, TransferCoreError):
        hint = exc.hint
        for library, cli in _CLI_HINTS.items():
            hint = hint.replace(library, cli)
        text = Exception.__str__(exc)
        return f"{text} ({hint})" if hint else text
    return str(exc)


def report_error(exc: BaseException) -> int:
    """Print ``exc`` as one line and return its exit code."""
    print(f"transfercore: error: {error_line(exc)}", file=sys.stderr)
    return int(exit_code_for(exc))


def silence_stdout() -> None:
    """The reader of stdout is gone: send what is still to be written to
    /dev/null, so that later writes (and the interpreter's final flush) do not
    raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    words = list(argv) if argv is not None else sys.argv[1:]
    # (a command name as typed is the first word; options before it are the top level's)
    parser = build_parser(words[0] if words and not words[0].startswith("-") else None)
    args = parser.parse_args(argv)
    #: as given, for a command that runs copies of itself (``serve --workers``)
    args.argv = words
    try:
        code = int(args.func(args))
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        silence_stdout()
        return int(ExitCode.BROKEN_PIPE)
    except TransferCoreError as exc:
        return report_error(exc)
    except KeyboardInterrupt:
        print(f"transfercore: {INTERRUPTED_MESSAGE}", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
