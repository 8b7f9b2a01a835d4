"""The project's error tree.

Every error raised on purpose by transfercore or its drivers derives from
:class:`TransferCoreError`.  Storage errors are also :class:`OSError`
subclasses where the meaning fits, so callers that already catch
``FileNotFoundError`` or ``PermissionError`` keep working.

Each message says what failed and, where there is one, what to do next.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Iterable

#: The hint of an error after which the same transfer, run again with the same journal, resumes
#: from its durable marker.  The command line shows its own wording in its place.
RESUME_HINT = "run the transfer again to resume from its durable marker"


class TransferCoreError(Exception):
    """Root of every error transfercore raises on purpose."""

    #: A short, actionable sentence shown after the message by the command line.
    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        # Exception's own form: OSError's would prefix "[Errno None]" to storage errors.
        text = Exception.__str__(self)
        return f"{text} ({self.hint})" if self.hint else text


# --- configuration: drivers, URLs, options -----------------------------------


class DriverNotFound(TransferCoreError, LookupError):
    """No installed driver has the requested name."""

    def __init__(self, name: str, installed: Iterable[str]) -> None:
        names = sorted(installed)
        listing = ", ".join(names) if names else "none"
        super().__init__(
            f"no transfercore driver named {name!r} is installed (installed: {listing})",
            hint=f"install the distribution that provides it, e.g. 'pip install transfercore-{name}'",
        )
        self.name = name
        self.installed = tuple(names)


class DriverLoadError(TransferCoreError, ImportError):
    """A driver is registered but could not be imported or constructed."""

    def __init__(self, name: str, distribution: str | None, cause: BaseException) -> None:
        where = f" (from distribution {distribution!r})" if distribution else ""
        super().__init__(
            f"driver {name!r}{where} failed to load: {type(cause).__name__}: {cause}",
            hint=f"reinstall it, e.g. 'pip install --force-reinstall {distribution or 'transfercore-' + name}'",
        )
        self.name = name
        self.distribution = distribution
        self.cause = cause


class LocationError(TransferCoreError, ValueError):
    """A URL or path could not be understood."""


class OptionError(TransferCoreError, ValueError):
    """A driver option is unknown or has an invalid value."""


class CapabilityError(TransferCoreError):
    """The driver cannot do what was asked (a declared capability forbids it)."""


class UnsupportedName(TransferCoreError):
    """The storage cannot hold this name (e.g. one that is not valid UTF-8)."""


class RangeSyntaxError(TransferCoreError, ValueError):
    """A byte range, range list or offset is malformed."""


class SizeSyntaxError(TransferCoreError, ValueError):
    """A human size such as ``64M`` or ``1GiB`` is malformed."""


# --- the restart-marker contract ---------------------------------------------


class RestartRejected(TransferCoreError):
    """The storage cannot back the restart marker that was presented.

    Raised by a driver when it opens a write with a marker; the caller must
    start the object again from zero rather than leave a gap.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(
            message,
            hint=hint or "the transfer must start again from zero; no byte of the marker is trusted",
        )


class InvalidWrite(TransferCoreError, ValueError):
    """A write breaks the rules: past the size, negative, overlapping, out of order, after close."""


class InvalidRead(TransferCoreError, ValueError):
    """A read asks for bytes the object cannot hold: an offset outside it, a negative length."""


class WriterClosed(InvalidWrite):
    """The writer was already completed, aborted or closed."""


class ReaderClosed(InvalidRead):
    """The reader was already closed."""


# --- transfers ----------------------------------------------------------------


class SourceChanged(TransferCoreError):
    """The source no longer matches the identity recorded for a partial transfer."""


class ChecksumMismatch(TransferCoreError):
    """Source and destination checksums differ after a transfer."""

    def __init__(self, algorithm: str, source: str, destination: str, *, hint: str | None = None) -> None:
        super().__init__(
            f"{algorithm} checksum mismatch: source {source}, destination {destination}",
            hint=hint
            or "the partial object was kept; copy it again with resume turned off to send it in full",
        )
        self.algorithm = algorithm
        self.source = source
        self.destination = destination


class UnknownChecksum(TransferCoreError, ValueError):
    """The checksum algorithm is not known."""


class UnsizedSource(TransferCoreError):
    """The source's size cannot be known before reading it to its end (a FIFO,
    a pipe, a device, a pseudo-file reporting size 0): it cannot be copied by
    positional reads, and a copy of it cannot resume from the source side."""

    #: The command line refuses it as a usage error (exit 2).
    exit_code = 2


class TransferAborted(TransferCoreError):
    """The transfer was stopped (signal or request); its durable state is kept."""


# --- storage (OSError subclasses so existing handlers keep working) -----------


class ListenError(TransferCoreError):
    """A server cannot listen on the address it was given (busy port, unknown host)."""

    @classmethod
    def on(cls, host: str, port: int, exc: OSError) -> ListenError:
        return cls(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                   hint="choose another --port (0 picks a free one) or stop what listens there")


class StorageError(TransferCoreError, OSError):
    """An error reported by the storage behind a driver."""

    def __init__(self, message: str, *, errno: int | None = None, hint: str | None = None) -> None:
        TransferCoreError.__init__(self, message, hint=hint)
        # OSError's errno attribute is settable; keep it meaningful for callers.
        self.errno = errno
        self.strerror = message


class NotFound(StorageError, FileNotFoundError):
    """The object or a directory on its path does not exist."""


class AlreadyExists(StorageError, FileExistsError):
    """The object exists and the operation would replace it."""


class PermissionDenied(StorageError, PermissionError):
    """The storage refused access."""


class PathEscapesRoot(PermissionDenied):
    """A path leaves the driver's confined root (``..`` or a symlink)."""


class ShortRead(StorageError):
    """A read returned fewer bytes than the object holds there: it changed while being read, or its storage failed."""

    def __init__(self, where: str, offset: int, got: int, wanted: int, *, hint: str | None = None) -> None:
        super().__init__(
            f"short read of {where} at offset {offset}: {got} of {wanted} bytes (it changed while being read, "
            "or its storage failed)",
            errno=_errno.EIO,
            hint=hint or "read it again once nothing else changes it",
        )
        self.offset = offset
        self.got = got
        self.wanted = wanted


class NoSpace(StorageError):
    """The storage is full."""


class QuotaExceeded(NoSpace):
    """The user's quota on the storage is used up."""


class IsADirectory(StorageError, IsADirectoryError):
    """A directory was found where an object was expected."""


class NotADirectory(StorageError, NotADirectoryError):
    """An object was found where a directory was expected."""


_BY_ERRNO: dict[int, tuple[type[StorageError], str]] = {
    _errno.ENOENT: (NotFound, "check the path; missing directories are not created for you"),
    _errno.EEXIST: (AlreadyExists, "remove it first or choose another name"),
    _errno.EACCES: (PermissionDenied, "check the permissions of the path and its directories"),
    _errno.EPERM: (PermissionDenied, "check the permissions of the path and its directories"),
    _errno.ENOSPC: (NoSpace, "free space on the storage, then " + RESUME_HINT),
    _errno.EDQUOT: (QuotaExceeded, "raise the quota or free space, then " + RESUME_HINT),
    _errno.EISDIR: (IsADirectory, "give the path of a file, not of a directory"),
    _errno.ENOTDIR: (NotADirectory, "a component of the path is a file, not a directory"),
    _errno.ENAMETOOLONG: (StorageError, "a name or the whole path is longer than the system allows, on Linux "
                                        "255 bytes a name and 4,096 a path; shorten it, or copy from a directory "
                                        "nearer the long path"),
}


def storage_error(err: int, message: str) -> StorageError:
    """Build the most specific :class:`StorageError` for an errno value."""
    cls, hint = _BY_ERRNO.get(err, (StorageError, ""))
    return cls(message, errno=err, hint=hint or None)


def from_oserror(exc: OSError, what: str) -> StorageError:
    """Translate an ``OSError`` from the operating system into the project's tree."""
    if isinstance(exc, StorageError):
        return exc
    reason = exc.strerror or str(exc)
    return storage_error(exc.errno or 0, f"{what}: {reason}")
