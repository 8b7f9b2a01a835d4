"""The project's errors as the DSI's FTP replies: code, Globus error name, text.

Codes and names come from the one table ``serve`` uses too
(:mod:`transfercore.gridftp.replies`).  The text is the driver's message
(with its hint), so the client sees why.
"""

from __future__ import annotations

import attrs

from transfercore.gridftp.replies import failure, one_line
from transfercore.outcomes import Outcome, outcome_of


@attrs.frozen
class ErrorReply:
    code: int
    error_code: str
    text: str


def error_reply(exc: BaseException) -> ErrorReply:
    if outcome_of(exc) is Outcome.INTERNAL:
        return ErrorReply(
            451, "DSI_INTERNAL", one_line(f"transfercore DSI internal error: {type(exc).__name__}: {exc}")
        )
    how = failure(exc)
    return ErrorReply(how.code, how.error_code, one_line(str(exc)))


__all__ = ["ErrorReply", "error_reply", "one_line"]
