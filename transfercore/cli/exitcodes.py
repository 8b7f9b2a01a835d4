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
    #: Stopped by Ctrl-C or SIGTERM; run the same command again to resume.
    INTERRUPTED = 130
