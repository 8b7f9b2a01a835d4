"""The project's errors as the DSI's FTP replies: code, Globus error name, text.

Codes and names come from the one table ``serve`` uses too
(:mod:`transfercore.gridftp.replies`).  The text is the driver's message
(with its hint), so the client sees why.

That table lives in the GridFTP front end, whose package takes about 40 ms
of CPU to import (its session machine, the spool), and every session of
an upload needs a reply for one error: the server stats each target before
``STOR``, and a new file is not found.  That one answer is kept here
(:data:`NOT_FOUND`, checked against the table by the tests); any other
error imports the table.
"""

from __future__ import annotations

import attrs

from transfercore.outcomes import Outcome, outcome_of

#: ``FAILURES[Outcome.NOT_FOUND]`` of :mod:`transfercore.gridftp.replies`: code and Globus error name
NOT_FOUND = (550, "PATH_NOT_FOUND")


@attrs.frozen
class ErrorReply:
    code: int
    error_code: str
    text: str


def one_line(text: object) -> str:
    """Reply text on one line (a file name with a line break must not forge a reply)."""
    return " ".join(str(text).split())


def error_reply(exc: BaseException) -> ErrorReply:
    outcome = outcome_of(exc)
    if outcome is Outcome.INTERNAL:
        return ErrorReply(
            451, "DSI_INTERNAL", one_line(f"transfercore DSI internal error: {type(exc).__name__}: {exc}")
        )
    if outcome is Outcome.NOT_FOUND:
        return ErrorReply(*NOT_FOUND, one_line(str(exc)))
    from transfercore.gridftp.replies import failure

    how = failure(exc)
    return ErrorReply(how.code, how.error_code, one_line(str(exc)))


__all__ = ["NOT_FOUND", "ErrorReply", "error_reply", "one_line"]
