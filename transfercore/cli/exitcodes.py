"""The command line's exit codes (documented in the README)."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    #: The transfer or command failed; the message says why.  Durable state is kept.
    FAILED = 1
    #: Bad command-line usage (argparse's own code).
    USAGE = 2
    #: The checksum of the destination differs from the source.
    CHECKSUM_MISMATCH = 3
    #: A conformance check failed.
    NONCONFORMANT = 4
    #: No conformance clause failed, but some could not run on this machine (the report says what to install).
    NOT_RUN = 5
    #: Stopped by Ctrl-C or SIGTERM; run the same command again to resume.
    INTERRUPTED = 130
    #: The output pipe was closed by its reader (as ``| head`` does); what was printed is correct.
    BROKEN_PIPE = 141


def exit_code_for(exc: BaseException) -> ExitCode:
    """The documented exit code for an error the command line reports."""
    from ..errors import (
        ChecksumMismatch,
        DriverNotFound,
        LocationError,
        OptionError,
        RangeSyntaxError,
        SizeSyntaxError,
        TransferAborted,
        UnknownChecksum,
    )

    if isinstance(exc, (LocationError, OptionError, DriverNotFound, UnknownChecksum, SizeSyntaxError, RangeSyntaxError)):
        return ExitCode.USAGE
    if isinstance(exc, ChecksumMismatch):
        return ExitCode.CHECKSUM_MISMATCH
    if isinstance(exc, (TransferAborted, KeyboardInterrupt)):
        return ExitCode.INTERRUPTED
    explicit = getattr(exc, "exit_code", None)
    return ExitCode(explicit) if explicit is not None else ExitCode.FAILED
