"""The transfer log and the session log, through Python's :mod:`logging`.

The transfer log has one line per finished or failed transfer in the format
the Globus GridFTP server writes with ``-log-transfer`` (and tools parse)::

    DATE=20260105101500.123456 HOST=dtn1 PROG=transfercore NL.EVNT=FTP_INFO START=20260105101459.001000
    USER=alice FILE=/data/x BUFFER=0 BLOCK=262144 NBYTES=1048576 VOLUME=/ STREAMS=4 STRIPES=1
    DEST=[192.0.2.7] TYPE=STOR CODE=226 DURABLE=1048576 CHECKSUM=adler32:0a1b2c3d

(one line), then two fields of this server's own: ``DURABLE=`` the bytes of
this transfer known durable (named by restart markers, or all of them after a
226 for an upload; ``-`` when unknown: a failed MODE S upload gets no
markers) and ``CHECKSUM=`` (``-`` unless asked for).  Times are UTC.  Spaces,
``%`` and control characters in a file name are %-escaped so that every
field stays one word.

Both logs go to the loggers :data:`TRANSFERS` and :data:`SESSIONS`: a site
may add its own handlers (syslog, journald) with :func:`logging.config`.
:func:`configure` attaches the files given by ``--transfer-log`` and
``--session-log`` (:class:`logging.handlers.WatchedFileHandler`: a file
renamed by logrotate is reopened at the next line) and is called again on
``SIGHUP``, which reopens them in any case.
"""

from __future__ import annotations

import datetime
import functools
import logging
import logging.handlers
import socket

import attrs

TRANSFERS = logging.getLogger("transfercore.transfers")
SESSIONS = logging.getLogger("transfercore.sessions")
PROG = "transfercore"

_handlers: dict[str, logging.Handler] = {}


@functools.cache
def hostname() -> str:
    """This host's name, asked once (a ``uname`` call for each line added up)."""
    return socket.gethostname()


def stamp(when: float) -> str:
    """``YYYYmmddHHMMSS.ffffff`` in UTC, as the Globus transfer log writes dates."""
    return datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y%m%d%H%M%S.%f")


def word(text: str) -> str:
    """``text`` as one field value: whitespace, ``%`` and control characters %-escaped."""
    out: list[str] = []
    for ch in text:
        if ch == "%" or ch.isspace() or not ch.isprintable():
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
        else:
            out.append(ch)
    return "".join(out) or "-"


@attrs.frozen
class TransferRecord:
    """One finished or failed transfer, as the transfer log records it."""

    start: float
    end: float
    user: str
    file: str
    #: STOR, RETR, ESTO or ERET
    type: str
    #: the final reply's code; 0 when the connection closed before one
    code: int
    nbytes: int
    remote: str
    streams: int = 1
    buffer: int = 0
    block: int = 262144
    durable: int | None = None
    checksum: str | None = None
    host: str = attrs.field(factory=hostname)
    session: int = 0

    def line(self) -> str:
        fields = [
            ("DATE", stamp(self.end)),
            ("HOST", word(self.host)),
            ("PROG", PROG),
            ("NL.EVNT", "FTP_INFO"),
            ("START", stamp(self.start)),
            ("USER", word(self.user)),
            ("FILE", word(self.file)),
            ("BUFFER", str(self.buffer)),
            ("BLOCK", str(self.block)),
            ("NBYTES", str(self.nbytes)),
            ("VOLUME", "/"),
            ("STREAMS", str(self.streams)),
            ("STRIPES", "1"),
            ("DEST", f"[{self.remote}]"),
            ("TYPE", self.type),
            ("CODE", str(self.code)),
            ("DURABLE", "-" if self.durable is None else str(self.durable)),
            ("CHECKSUM", word(self.checksum) if self.checksum else "-"),
        ]
        return " ".join(f"{k}={v}" for k, v in fields)


def parse_line(line: str) -> dict[str, str]:
    """The fields of a transfer or session log line (for tests and tools)."""
    fields: dict[str, str] = {}
    for item in line.split():
        key, sep, value = item.partition("=")
        if sep:
            fields[key] = value
    return fields


def session_line(event: str, session: int, remote: str, user: str | None = None, **extra: object) -> str:
    """A session log line: the transfer log's style, ``NL.EVNT=SESSION_START``, ``_LOGIN`` or ``_END``."""
    import time

    fields = [("DATE", stamp(time.time())), ("HOST", word(hostname())), ("PROG", PROG),
              ("NL.EVNT", f"SESSION_{event.upper()}"), ("SESSION", str(session)), ("DEST", f"[{remote}]")]
    if user is not None:
        fields.append(("USER", word(user)))
    fields.extend((k.upper(), word(str(v))) for k, v in extra.items())
    return " ".join(f"{k}={v}" for k, v in fields)


def log_transfer(record: TransferRecord) -> None:
    TRANSFERS.info(record.line())


def log_session(event: str, session: int, remote: str, user: str | None = None, **extra: object) -> None:
    if SESSIONS.isEnabledFor(logging.INFO):
        SESSIONS.info(session_line(event, session, remote, user, **extra))


def configure(transfer_log: str | None, session_log: str | None, *, verbose: bool = False) -> None:
    """Attach (or reattach: reopened) the log files; ``None`` detaches a file given before.

    A log with a file goes only there; one without goes where the other
    logs go (stderr, or the site's handlers) when ``verbose``.
    """
    for logger, path in ((TRANSFERS, transfer_log), (SESSIONS, session_log)):
        logger.setLevel(logging.INFO if path or verbose else logging.WARNING)
        logger.propagate = not path
        old = _handlers.pop(logger.name, None)
        if old is not None:
            logger.removeHandler(old)
            old.close()
        if path:
            handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
            _handlers[logger.name] = handler


__all__ = ["SESSIONS", "TRANSFERS", "TransferRecord", "configure", "log_session", "log_transfer", "parse_line"]
