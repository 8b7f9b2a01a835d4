"""GridFTP replies for failures: the core's outcomes as reply codes, once, for ``serve`` and the DSI.

The codes follow RFC 959 and the Globus server where they agree: a name
that is taken, a directory where a file is meant (or the reverse) and a
restart the storage cannot back are 553; a missing path or a refusal 550.
Where they differ, RFC 959's specific code wins: no space left is 452
("insufficient storage space"; the Globus server answers 451, and clients
treat both as transient).  The error names are the Globus server's, which
Globus Transfer reads.
"""

from __future__ import annotations

import attrs

from ..outcomes import Outcome, outcome_of
from .control import Reply
from .errors import BadArgument, NoDataConnection, RemoteProtocolError, ReplyError
from .spool import SpoolFull


@attrs.frozen
class Failure:
    """How GridFTP says an outcome: the reply code, the Globus error name, a text prefix."""

    code: int
    error_code: str
    prefix: str = ""


FAILURES: dict[Outcome, Failure] = {
    Outcome.RESTART_REFUSED: Failure(553, "APPEND_NOT_SUPPORTED", "Restart marker rejected: "),
    Outcome.PATH_NOT_ALLOWED: Failure(550, "PATH_NOT_ALLOWED"),
    Outcome.NOT_FOUND: Failure(550, "PATH_NOT_FOUND", "No such file or directory: "),
    Outcome.PERMISSION_DENIED: Failure(550, "PERMISSION_DENIED"),
    Outcome.EXISTS: Failure(553, "PATH_EXISTS"),
    Outcome.IS_DIRECTORY: Failure(553, "IS_A_DIRECTORY"),
    Outcome.NOT_DIRECTORY: Failure(553, "NOT_A_DIRECTORY"),
    Outcome.QUOTA_EXCEEDED: Failure(452, "QUOTA_EXCEEDED", "Insufficient storage space: "),
    Outcome.NO_SPACE: Failure(452, "NO_SPACE_LEFT", "Insufficient storage space: "),
    Outcome.UNKNOWN_CHECKSUM: Failure(504, "UNSUPPORTED_CHECKSUM"),
    Outcome.NOT_SUPPORTED: Failure(502, "NOT_SUPPORTED", "Not implemented by this storage: "),
    Outcome.CONFIGURATION: Failure(451, "CONFIGURATION_ERROR", "Local error: "),
    Outcome.INVALID_DATA: Failure(451, "INVALID_DATA", "Transfer failed: "),
    Outcome.INVALID_RANGE: Failure(501, "INVALID_RANGE"),
    Outcome.CHECKSUM_MISMATCH: Failure(451, "CHECKSUM_MISMATCH", "Local error: "),
    Outcome.ABORTED: Failure(426, "TRANSFER_ABORTED", "Transfer aborted: "),
    Outcome.STORAGE_FAILED: Failure(451, "IO_FAILED", "Local error: "),
    Outcome.FAILED: Failure(451, "TRANSFERCORE", "Local error: "),
    Outcome.INTERNAL: Failure(451, "INTERNAL_ERROR", "Internal error: "),
}


def failure(exc: BaseException) -> Failure:
    """The reply code and Globus error name for an exception."""
    if isinstance(exc, ReplyError):
        # the protocol layer already chose the code (a plan refused, an upload with holes)
        return Failure(exc.code, FAILURES[Outcome.FAILED].error_code)
    return FAILURES[outcome_of(exc)]


def one_line(text: object) -> str:
    """Reply text on one line (a file name with a line break must not forge a reply)."""
    return " ".join(str(text).split())


def _text(exc: BaseException) -> str:
    return one_line(exc)[:400] or type(exc).__name__


def error_reply(exc: BaseException, *, during_transfer: bool = False) -> Reply:
    """``serve``'s reply for an error raised while carrying out a command."""
    text = _text(exc)
    if isinstance(exc, ReplyError):
        return Reply.one(exc.code, text)
    if isinstance(exc, BadArgument):
        return Reply.one(501, f"Syntax error in parameters: {text}")
    if isinstance(exc, NoDataConnection):
        return Reply.one(425, text)
    if isinstance(exc, SpoolFull):
        # RFC 959's "exceeded storage allocation": the spool's limit, not the storage's space
        return Reply.one(552, text)
    if isinstance(exc, RemoteProtocolError):
        return Reply.one(451 if during_transfer else 501, f"Transfer failed: {text}")
    outcome = outcome_of(exc)
    if outcome is Outcome.INTERNAL:
        if isinstance(exc, OSError):
            return Reply.one(426 if during_transfer else 451, f"Connection or I/O error: {text}")
        # details of an unexpected exception stay in the log
        return Reply.one(451, f"Internal error: {type(exc).__name__}")
    if outcome is Outcome.INVALID_DATA and not during_transfer:
        return Reply.one(501, f"Transfer failed: {text}")
    how = FAILURES[outcome]
    return Reply.one(how.code, f"{how.prefix}{text}")
