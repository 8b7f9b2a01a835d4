"""Errors of the GridFTP protocol layer.

Both derive from :class:`transfercore.errors.TransferCoreError`.  As in h11,
the side at fault is in the name: a *remote* error means the peer sent
something we refuse; a *local* error means our own code asked the codec to
produce something the protocol cannot express.
"""

from __future__ import annotations

from ..errors import TransferCoreError


class GridFTPError(TransferCoreError):
    """Base of the GridFTP protocol errors."""


class RemoteProtocolError(GridFTPError, ValueError):
    """The peer sent bytes that break the protocol; the connection that carried them cannot go on."""


class LocalProtocolError(GridFTPError, ValueError):
    """We were asked to send something the protocol cannot express (a bug in the caller)."""


class BadArgument(GridFTPError, ValueError):
    """A command's argument is malformed; the command is refused (501) and the session goes on."""


class BadBlockHeader(RemoteProtocolError):
    """A MODE E block header is malformed; the data connection is closed and the transfer fails."""


class DataTimeout(TransferCoreError):
    """No data moved on a data connection within the timeout."""


class NoDataConnection(GridFTPError):
    """The data connection could not be opened (no PASV listener, a refused PORT address): 425."""


class TooManyDataConnections(GridFTPError):
    """The client opened more data connections for one transfer than the server allows (451)."""


class ReplyError(GridFTPError):
    """A command or transfer ends with the reply ``code`` (as h11's ``error_status_hint``).

    The sans-I/O layer raises it with the code the protocol calls for; the
    I/O shell only sends it.
    """

    def __init__(self, code: int, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code
