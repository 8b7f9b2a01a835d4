"""botocore's exceptions as the project's errors, each with what to do about it."""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from transfercore.errors import (
    LocationError,
    NotFound,
    PermissionDenied,
    SourceChanged,
    StorageError,
    TransferCoreError,
)

CREDENTIALS_HINT = (
    "check the credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, the shared credentials file "
    "(~/.aws/credentials), AWS_PROFILE or ?profile=NAME"
)
_DENIED = {"AccessDenied", "403", "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "ExpiredToken"}
_MISSING = {"NoSuchKey", "404", "NotFound", "NoSuchUpload"}


def code_of(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def translate(exc: Exception, what: str, endpoint: str) -> TransferCoreError:
    """The project's error for a failed request: ``what`` says what was being done."""
    if isinstance(exc, TransferCoreError):
        return exc
    if isinstance(exc, ClientError):
        code = code_of(exc)
        message = str(exc.response.get("Error", {}).get("Message", "")) or code
        if code == "NoSuchBucket":
            return NotFound(f"{what}: the bucket does not exist at {endpoint}", hint="create the bucket first, or check its name")
        if code in _DENIED:
            return PermissionDenied(f"{what}: access denied by {endpoint} ({code})", hint=CREDENTIALS_HINT)
        if code in _MISSING:
            return NotFound(f"{what}: not found ({code})")
        if code == "KeyTooLongError":
            return LocationError(f"{what}: the key is too long for the store", hint="S3 keys are at most 1024 bytes")
        if code in ("PreconditionFailed", "412"):
            return SourceChanged(
                f"{what}: the object changed while it was read (its ETag is no longer the one opened)",
                hint="copy again to read the new object from the start",
            )
        return StorageError(f"{what}: {endpoint} answered {code}: {message}")
    if isinstance(exc, NoCredentialsError):
        return PermissionDenied(f"{what}: no S3 credentials found", hint=CREDENTIALS_HINT)
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError)):
        return StorageError(
            f"{what}: cannot reach the S3 endpoint {endpoint}",
            hint="check that the server is running and the ?endpoint= address is right; run the same command again to resume",
        )
    if isinstance(exc, (ReadTimeoutError, BotoCoreError)):
        return StorageError(f"{what}: {exc}", hint="run the same command again to resume")
    return StorageError(f"{what}: {exc}")
