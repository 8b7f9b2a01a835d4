"""The requests the driver makes of one bucket, each failure as the project's error.

Everything that talks to the network is here; the writer and the driver
decide what to ask.  ``HeadBucket``, ``PutObject``, ``HeadObject`` and
``ListObjectsV2``, all a tree of small files needs, go the lean way
(:mod:`.lean`) when an endpoint is given; the other requests (multipart
uploads, reads) go through a botocore client, made on first use (loading
the S3 model costs a tenth of a second of CPU that a tree copy need not
pay).  botocore clients are thread-safe, so one client
serves the writer threads, the parallel readers and the driver.
Credentials and the region are found the way the AWS tools find them, for
both paths: by botocore, unless the environment alone decides them
(:mod:`.environment`), and botocore is then imported only if a request
needs its client.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import attrs
import crc32c

from transfercore.errors import NotFound, OptionError

from .environment import from_environment
from .errors import code_of, from_code, translate
from .lean import LeanS3
from .sigv4 import Credentials


@attrs.frozen
class Upload:
    """One unfinished multipart upload of a key, as the store lists it."""

    key: str
    upload_id: str
    initiated: datetime


@attrs.frozen
class Part:
    """One part the store has acknowledged."""

    number: int
    size: int
    etag: str


def digest_headers(data: bytes, checksum: str) -> dict[str, str]:
    """The integrity header the store checks the body against before it acknowledges."""
    if checksum == "crc32c":
        return {"ChecksumCRC32C": base64.b64encode(crc32c.crc32c(data).to_bytes(4, "big")).decode()}
    return {"ContentMD5": base64.b64encode(hashlib.md5(data).digest()).decode()}


#: The HTTP header of each of :func:`digest_headers`' botocore parameters.
HEADER_OF = {"ChecksumCRC32C": "x-amz-checksum-crc32c", "ContentMD5": "Content-MD5"}


def _client_error() -> type[Exception]:
    """botocore's ClientError, imported only once a botocore request failed."""
    from botocore.exceptions import ClientError

    found: type[Exception] = ClientError
    return found


def _no_expect_continue(params: dict[str, Any], **_: Any) -> None:
    params.get("headers", {}).pop("Expect", None)


class Store:
    """One bucket at one endpoint."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint: str | None,
        region: str | None,
        profile: str | None,
        addressing: str,
        connections: int,
    ) -> None:
        self.bucket = bucket
        self.endpoint = endpoint or "the AWS S3 endpoint"
        self._endpoint_url = endpoint or None
        self._addressing, self._connections = addressing, connections
        self._profile = profile or None
        self._session: Any = None
        self._frozen: tuple[Any, Credentials | None] = (None, None)
        ca_bundle: str | None = None
        found = from_environment(os.environ, profile=self._profile, region=region,
                                 https=endpoint.startswith("https:")) if endpoint else None
        if found is not None:
            self._frozen = (found[0], found[0])
            self.region = found[1]
            ca_bundle = os.environ.get("AWS_CA_BUNDLE")
        else:
            session = self._botocore_session()
            self.region = region or session.get_config_variable("region") or "us-east-1"
            ca_bundle = session.get_config_variable("ca_bundle")
        self._client: Any = None
        # AWS's own endpoint (regions that redirect, FIPS and dual-stack
        # variants) is left to botocore, which knows it
        self.lean = (
            LeanS3(endpoint, bucket, region=self.region, addressing=addressing, credentials=self.credentials,
                   ca_bundle=ca_bundle)
            if endpoint else None
        )
        self._checked = False
        self._lock = threading.Lock()
        self._client_lock = threading.Lock()

    def _botocore_session(self) -> Any:
        """botocore's session (its credential chain and config files), made once;
        an unknown profile is refused here, before any request."""
        if self._session is None:
            import botocore.session
            from botocore.exceptions import ProfileNotFound

            session = botocore.session.Session(profile=self._profile)
            try:
                session.get_scoped_config()
            except ProfileNotFound as exc:
                raise OptionError(
                    f"S3 profile {self._profile or session.profile!r} is not in the shared credentials or config file",
                    hint="give a profile of ~/.aws/credentials (or AWS_SHARED_CREDENTIALS_FILE), or leave ?profile= out",
                ) from exc
            self._session = session
        return self._session

    def credentials(self) -> Credentials | None:
        """The current credentials (botocore's chain: environment, shared
        files, profiles, instance metadata; refreshed when they expire), or
        None when there are none."""
        cached, converted = self._frozen
        if self._session is None:
            return converted  # the environment's, which do not expire
        found = self._session.get_credentials()
        if found is None:
            return None
        frozen = found.get_frozen_credentials()
        if cached is not frozen and cached != frozen:
            converted = Credentials(frozen.access_key, frozen.secret_key, frozen.token or None)
            self._frozen = (frozen, converted)
        return converted

    @property
    def client(self) -> Any:
        """The botocore client, made on first use."""
        client = self._client
        if client is not None:
            return client
        with self._client_lock:
            if self._client is None:
                from botocore.config import Config

                config = Config(
                    s3={"addressing_style": self._addressing},
                    max_pool_connections=self._connections,
                    connect_timeout=5,
                    read_timeout=120,
                    retries={"max_attempts": 3, "mode": "standard"},
                    # the driver sends its own per-part checksum and reads ranges, for
                    # which the store returns no whole-object checksum to validate
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                )
                made = self._botocore_session().create_client("s3", endpoint_url=self._endpoint_url, region_name=self.region,
                                                   config=config)
                # botocore asks for "100 Continue" before every body: one more round
                # trip per PUT, which doubles the cost of a small object; a refused
                # request costs at most one part's bytes sent for nothing
                made.meta.events.register_last("before-call.s3", _no_expect_continue)
                self._client = made
            return self._client

    def close(self) -> None:
        if self.lean is not None:
            self.lean.close()

    def where(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _call(self, what: str, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(Bucket=self.bucket, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure becomes the project's error
            raise translate(exc, what, self.endpoint) from exc

    def check_bucket(self) -> None:
        """Once per driver: the bucket exists and the credentials open it (some
        stores create a missing bucket on the first PUT, which must not happen)."""
        with self._lock:
            if self._checked:
                return
            what = f"cannot open bucket {self.bucket!r}"
            missing = NotFound(
                f"bucket {self.bucket!r} does not exist at {self.endpoint}",
                hint="create the bucket first (aws s3 mb s3://BUCKET), or check its name",
            )
            if self.lean is not None:
                try:
                    self.credentials()  # once, before threads ask for them
                except Exception as exc:  # noqa: BLE001 - botocore's, from its chain
                    raise translate(exc, what, self.endpoint) from exc
                answer = self.lean.head_bucket(what)
                if answer.status == 404:
                    raise missing
                if answer.status != 200:
                    raise from_code(*answer.error(), what, self.endpoint)
                self._checked = True
                return
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except _client_error() as exc:
                if code_of(exc) in ("404", "NoSuchBucket", "NotFound"):
                    raise missing from exc
                raise translate(exc, what, self.endpoint) from exc
            except Exception as exc:  # noqa: BLE001
                raise translate(exc, what, self.endpoint) from exc
            self._checked = True

    # -- objects ---------------------------------------------------------------

    def head(self, key: str, *, checksums: bool = False) -> dict[str, Any] | None:
        if self.lean is not None:
            return self.lean.head_object(key, f"cannot stat {self.where(key)}", checksums=checksums)
        extra = {"ChecksumMode": "ENABLED"} if checksums else {}
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key, **extra)  # type: ignore[no-any-return]
        except _client_error() as exc:
            if code_of(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise translate(exc, f"cannot stat {self.where(key)}", self.endpoint) from exc
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, f"cannot stat {self.where(key)}", self.endpoint) from exc

    def get_range(self, key: str, start: int, end: int, etag: str) -> bytes:
        """Bytes ``[start, end)`` of the object whose ETag is still ``etag``."""
        response = self._call(
            f"cannot read {self.where(key)}", "get_object", Key=key, Range=f"bytes={start}-{end - 1}", IfMatch=etag
        )
        try:
            return response["Body"].read()  # type: ignore[no-any-return]
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, f"cannot read {self.where(key)}", self.endpoint) from exc

    def get_first(self, key: str, length: int) -> tuple[int, str, bytes] | None:
        """The object's size, its ETag and its first ``length`` bytes (all of it
        when it is smaller), or None when there is no such object."""
        what = f"cannot read {self.where(key)}"
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{length - 1}")
        except _client_error() as exc:
            code = code_of(exc)
            if code in ("404", "NoSuchKey", "NotFound"):
                return None
            if code not in ("InvalidRange", "416"):
                raise translate(exc, what, self.endpoint) from exc
            # an empty object has no byte 0 to give
            head = self.head(key)
            return None if head is None else (int(head["ContentLength"]), str(head["ETag"]), b"")
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, what, self.endpoint) from exc
        try:
            body = response["Body"].read()
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, what, self.endpoint) from exc
        content_range = str(response.get("ContentRange") or "")
        total = content_range.rpartition("/")[2]
        size = int(total) if total.isdigit() else int(response["ContentLength"])  # 200: the whole object
        return size, str(response["ETag"]), body

    def put(self, key: str, data: bytes, checksum: str) -> str:
        return str(self.put_object(key, data, checksum)["ETag"])

    def put_object(self, key: str, data: bytes, checksum: str) -> dict[str, Any]:
        """One atomic PUT with its checksum; the store's whole answer (ETag, the checksum it checked)."""
        if self.lean is not None:
            digest = {HEADER_OF[name]: value for name, value in digest_headers(data, checksum).items()}
            return self.lean.put_object(key, data, digest, hashlib.sha256(data).hexdigest(),
                                        f"cannot store {self.where(key)}")
        response = self._call(f"cannot store {self.where(key)}", "put_object", Key=key, Body=data, **digest_headers(data, checksum))
        return response  # type: ignore[no-any-return]

    def delete(self, key: str) -> None:
        self._call(f"cannot remove {self.where(key)}", "delete_object", Key=key)

    def pages(
        self, prefix: str, delimiter: str = "/", start_after: str = "", page_size: int = 1000
    ) -> Iterator[dict[str, Any]]:
        """The listing pages of ``prefix`` (its keys after ``start_after``)."""
        token: dict[str, str] = {"StartAfter": start_after} if start_after else {}
        what = f"cannot list {self.where(prefix)}"
        while True:
            if self.lean is not None:
                names = {"StartAfter": "start-after", "ContinuationToken": "continuation-token"}
                query = [("prefix", prefix), ("max-keys", str(page_size)), *((names[k], v) for k, v in token.items()),
                         *((("delimiter", delimiter),) if delimiter else ())]
                page = self.lean.list_page(query, what)
            else:
                page = self._call(what, "list_objects_v2", Prefix=prefix, Delimiter=delimiter, MaxKeys=page_size,
                                  **token)
            yield page
            if not page.get("IsTruncated"):
                return
            token = {"ContinuationToken": page["NextContinuationToken"]}

    # -- multipart uploads -----------------------------------------------------------

    def uploads(self, prefix: str) -> list[Upload]:
        """The unfinished uploads under ``prefix``, oldest first."""
        found: list[Upload] = []
        marker: dict[str, str] = {}
        while True:
            page = self._call(f"cannot list the uploads of {self.where(prefix)}", "list_multipart_uploads", Prefix=prefix, **marker)
            for item in page.get("Uploads", []):
                found.append(Upload(item["Key"], item["UploadId"], item["Initiated"]))
            if not page.get("IsTruncated"):
                break
            marker = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}
        return sorted(found, key=lambda u: u.initiated)

    def create_upload(self, key: str, full_crc32c: bool = False) -> str:
        """Start an upload.  With ``full_crc32c`` the store is asked to keep the
        whole object's CRC32C, which it combines from the parts' CRC32Cs it
        checked on arrival (``ChecksumType=FULL_OBJECT``); a store that does not
        know the request gets the plain one."""
        what = f"cannot start the upload of {self.where(key)}"
        if full_crc32c:
            try:
                response = self.client.create_multipart_upload(
                    Bucket=self.bucket, Key=key, ChecksumAlgorithm="CRC32C", ChecksumType="FULL_OBJECT"
                )
                return str(response["UploadId"])
            except _client_error() as exc:
                if code_of(exc) not in ("InvalidArgument", "InvalidRequest", "NotImplemented"):
                    raise translate(exc, what, self.endpoint) from exc
            except Exception as exc:  # noqa: BLE001
                raise translate(exc, what, self.endpoint) from exc
        response = self._call(what, "create_multipart_upload", Key=key)
        return str(response["UploadId"])

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes, checksum: str) -> str:
        """Send one part; return its ETag once the store acknowledged it."""
        response = self._call(
            f"cannot store part {number} of {self.where(key)}",
            "upload_part",
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            **digest_headers(data, checksum),
        )
        return str(response["ETag"])

    def parts(self, key: str, upload_id: str) -> list[Part]:
        """Every part the store lists for the upload."""
        found: list[Part] = []
        marker: dict[str, int] = {}
        while True:
            page = self._call(
                f"cannot list the parts of {self.where(key)}", "list_parts", Key=key, UploadId=upload_id, **marker
            )
            for item in page.get("Parts", []):
                found.append(Part(int(item["PartNumber"]), int(item["Size"]), str(item["ETag"])))
            if not page.get("IsTruncated"):
                return found
            marker = {"PartNumberMarker": int(page["NextPartNumberMarker"])}

    def complete_upload(self, key: str, upload_id: str, parts: list[Part]) -> str:
        response = self._call(
            f"cannot publish {self.where(key)}",
            "complete_multipart_upload",
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]},
        )
        return str(response["ETag"])

    def abort_upload(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except _client_error() as exc:
            if code_of(exc) in ("NoSuchUpload", "404"):
                return
            raise translate(exc, f"cannot abort the upload of {self.where(key)}", self.endpoint) from exc
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, f"cannot abort the upload of {self.where(key)}", self.endpoint) from exc


def multipart_etag(parts: list[Part]) -> str | None:
    """The ETag S3 gives a completed upload of these parts (MD5 of the parts'
    MD5s, then ``-N``), or None when a part's ETag is not a plain MD5 (stores
    with server-side encryption)."""
    digests = b""
    for part in parts:
        text = part.etag.strip('"')
        if len(text) != 32:
            return None
        try:
            digests += bytes.fromhex(text)
        except ValueError:
            return None
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'
