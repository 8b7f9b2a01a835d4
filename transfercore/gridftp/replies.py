"""Replies for storage outcomes and errors, shared by the server's handlers."""

from __future__ import annotations

from ..errors import (
    AlreadyExists,
    CapabilityError,
    InvalidWrite,
    IsADirectory,
    NoSpace,
    NotADirectory,
    NotFound,
    PermissionDenied,
    RestartRejected,
    StorageError,
    TransferAborted,
    TransferCoreError,
)
from .control import Reply
from .errors import BadArgument, RemoteProtocolError, ReplyError


def _text(exc: BaseException) -> str:
    # One line, whatever the exception text holds.
    return " ".join(str(exc).split())[:400] or type(exc).__name__


def error_reply(exc: BaseException, *, during_transfer: bool = False) -> Reply:
    """The reply for an error raised while carrying out a command."""
    text = _text(exc)
    if isinstance(exc, ReplyError):
        return Reply.one(exc.code, text)
    if isinstance(exc, RestartRejected):
        return Reply.one(553, f"Restart marker rejected: {text}")
    if isinstance(exc, BadArgument):
        return Reply.one(501, f"Syntax error in parameters: {text}")
    if isinstance(exc, NotFound):
        return Reply.one(550, f"No such file or directory: {text}")
    if isinstance(exc, (PermissionDenied, IsADirectory, NotADirectory, AlreadyExists)):
        return Reply.one(550, text)
    if isinstance(exc, NoSpace):
        return Reply.one(452, f"Insufficient storage space: {text}")
    if isinstance(exc, CapabilityError):
        return Reply.one(502, f"Not implemented by this storage: {text}")
    if isinstance(exc, TransferAborted):
        return Reply.one(426, f"Transfer aborted: {text}")
    if isinstance(exc, (RemoteProtocolError, InvalidWrite)):
        return Reply.one(451 if during_transfer else 501, f"Transfer failed: {text}")
    if isinstance(exc, (StorageError, TransferCoreError)):
        return Reply.one(451, f"Local error: {text}")
    if isinstance(exc, OSError):
        return Reply.one(426 if during_transfer else 451, f"Connection or I/O error: {text}")
    return Reply.one(451, f"Internal error: {type(exc).__name__}")
