"""What a failed transfer or command means, as a value every front end shares.

The engine reports errors, ``serve`` and the DSI turn them into FTP replies;
they all start from :func:`outcome_of`, so one exception means one thing
everywhere.  Front ends map an :class:`Outcome` to their own words once
(GridFTP reply codes: :mod:`transfercore.gridftp.replies`).
"""

from __future__ import annotations

import enum

from . import errors as E


class Outcome(enum.Enum):
    """Why a transfer or command did not succeed."""

    #: the storage cannot resume where the client asked; send again from the start
    RESTART_REFUSED = "restart-refused"
    PATH_NOT_ALLOWED = "path-not-allowed"
    NOT_FOUND = "not-found"
    PERMISSION_DENIED = "permission-denied"
    EXISTS = "exists"
    IS_DIRECTORY = "is-directory"
    NOT_DIRECTORY = "not-directory"
    QUOTA_EXCEEDED = "quota-exceeded"
    NO_SPACE = "no-space"
    UNKNOWN_CHECKSUM = "unknown-checksum"
    NOT_SUPPORTED = "not-supported"
    CONFIGURATION = "configuration"
    INVALID_DATA = "invalid-data"
    INVALID_RANGE = "invalid-range"
    CHECKSUM_MISMATCH = "checksum-mismatch"
    ABORTED = "aborted"
    STORAGE_FAILED = "storage-failed"
    #: any other error transfercore raised on purpose
    FAILED = "failed"
    #: an exception transfercore did not expect: a bug, whose details stay in the log
    INTERNAL = "internal"


#: The most specific class first: the first match decides.
TABLE: tuple[tuple[type[BaseException], Outcome], ...] = (
    (E.RestartRejected, Outcome.RESTART_REFUSED),
    (E.PathEscapesRoot, Outcome.PATH_NOT_ALLOWED),
    (E.NotFound, Outcome.NOT_FOUND),
    (E.PermissionDenied, Outcome.PERMISSION_DENIED),
    (E.AlreadyExists, Outcome.EXISTS),
    (E.IsADirectory, Outcome.IS_DIRECTORY),
    (E.NotADirectory, Outcome.NOT_DIRECTORY),
    (E.QuotaExceeded, Outcome.QUOTA_EXCEEDED),
    (E.NoSpace, Outcome.NO_SPACE),
    (E.UnknownChecksum, Outcome.UNKNOWN_CHECKSUM),
    (E.CapabilityError, Outcome.NOT_SUPPORTED),
    (E.OptionError, Outcome.CONFIGURATION),
    (E.LocationError, Outcome.CONFIGURATION),
    (E.DriverNotFound, Outcome.CONFIGURATION),
    (E.DriverLoadError, Outcome.CONFIGURATION),
    (E.InvalidWrite, Outcome.INVALID_DATA),
    (E.InvalidRead, Outcome.INVALID_RANGE),
    (E.ChecksumMismatch, Outcome.CHECKSUM_MISMATCH),
    (E.TransferAborted, Outcome.ABORTED),
    (E.StorageError, Outcome.STORAGE_FAILED),
    (E.TransferCoreError, Outcome.FAILED),
)


def outcome_of(exc: BaseException) -> Outcome:
    """The outcome an exception stands for."""
    for cls, outcome in TABLE:
        if isinstance(exc, cls):
            return outcome
    return Outcome.INTERNAL


__all__ = ["TABLE", "Outcome", "outcome_of"]
