"""Failed requests as the project's errors, each with what to do about it.

Both request paths end here: botocore's exceptions (:func:`translate`) and
the lean path's status codes (:func:`from_code`), so a missing bucket or
wrong credentials read the same whichever path met them.  botocore is
imported only when one of its exceptions is to be translated.
"""

from __future__ import annotations

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


def code_of(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def from_code(code: str, message: str, what: str, endpoint: str) -> TransferCoreError:
    """The project's error for an S3 error code (or an HTTP status as text)."""
    if code == "NoSuchBucket":
        return NotFound(f"{what}: the bucket does not exist at {endpoint}", hint="create the bucket first, or check its name")
    if code in _DENIED:
        return PermissionDenied(f"{what}: access denied by {endpoint} ({code})", hint=CREDENTIALS_HINT)
    if code == "NoCredentials":
        return PermissionDenied(f"{what}: no S3 credentials found", hint=CREDENTIALS_HINT)
    if code in _MISSING:
        return NotFound(f"{what}: not found ({code})")
    if code == "KeyTooLongError":
        return LocationError(f"{what}: the key is too long for the store", hint="S3 keys are at most 1024 bytes")
    if code in ("PreconditionFailed", "412"):
        return SourceChanged(
            f"{what}: the object changed while it was read (its ETag is no longer the one opened)",
            hint="copy again to read the new object from the start",
        )
    return StorageError(f"{what}: {endpoint} answered {code}: {message or code}")


def unreachable(what: str, endpoint: str) -> StorageError:
    return StorageError(
        f"{what}: cannot reach the S3 endpoint {endpoint}",
        hint="check that the server is running and the ?endpoint= address is right; run the same command again to resume",
    )


def translate(exc: Exception, what: str, endpoint: str) -> TransferCoreError:
    """The project's error for a failed request: ``what`` says what was being done."""
    if isinstance(exc, TransferCoreError):
        return exc
    if not type(exc).__module__.startswith("botocore"):
        return StorageError(f"{what}: {exc}")
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return from_code(code_of(exc), str(error.get("Message", "")), what, endpoint)
    if isinstance(exc, NoCredentialsError):
        return from_code("NoCredentials", "", what, endpoint)
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError)):
        return unreachable(what, endpoint)
    if isinstance(exc, (ReadTimeoutError, BotoCoreError)):
        return StorageError(f"{what}: {exc}", hint="run the same command again to resume")
    return StorageError(f"{what}: {exc}")
