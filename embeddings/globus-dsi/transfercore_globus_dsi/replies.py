"""The project's errors as FTP replies: code, Globus error code, text.

The text is the driver's message (with its hint), so the client sees why.
"""

from __future__ import annotations

import attrs

from transfercore import errors as E


@attrs.frozen
class ErrorReply:
    code: int
    error_code: str
    text: str


_BY_TYPE: tuple[tuple[type[BaseException], int, str], ...] = (
    # the code the HPSS DSI uses for a restart the storage cannot back;
    # Globus Transfer then sends the file again from the start
    (E.RestartRejected, 553, "APPEND_NOT_SUPPORTED"),
    (E.PathEscapesRoot, 550, "PATH_NOT_ALLOWED"),
    (E.NotFound, 550, "PATH_NOT_FOUND"),
    (E.PermissionDenied, 550, "PERMISSION_DENIED"),
    (E.AlreadyExists, 553, "PATH_EXISTS"),
    (E.IsADirectory, 553, "PATH_IS_DIRECTORY"),
    (E.NotADirectory, 553, "PATH_IS_FILE"),
    (E.QuotaExceeded, 451, "QUOTA_EXCEEDED"),
    (E.NoSpace, 451, "NO_SPACE_LEFT"),
    (E.UnknownChecksum, 504, "UNSUPPORTED_CHECKSUM"),
    (E.CapabilityError, 502, "NOT_SUPPORTED"),
    (E.OptionError, 451, "DSI_CONFIG"),
    (E.LocationError, 451, "DSI_CONFIG"),
    (E.DriverNotFound, 451, "DSI_CONFIG"),
    (E.DriverLoadError, 451, "DSI_CONFIG"),
    (E.InvalidWrite, 451, "INVALID_DATA"),
    (E.InvalidRead, 501, "INVALID_RANGE"),
    (E.ChecksumMismatch, 451, "CHECKSUM_MISMATCH"),
    (E.StorageError, 451, "IO_FAILED"),
)


def one_line(text: str) -> str:
    """Reply text on one line (a file name with a line break must not forge a reply)."""
    return " ".join(str(text).split())


def error_reply(exc: BaseException) -> ErrorReply:
    for cls, code, error_code in _BY_TYPE:
        if isinstance(exc, cls):
            return ErrorReply(code, error_code, one_line(str(exc)))
    if isinstance(exc, E.TransferCoreError):
        return ErrorReply(451, "TRANSFERCORE", one_line(str(exc)))
    return ErrorReply(
        451, "DSI_INTERNAL", one_line(f"transfercore DSI internal error: {type(exc).__name__}: {exc}")
    )
