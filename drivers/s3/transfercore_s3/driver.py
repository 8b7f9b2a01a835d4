"""s3: objects in an S3 bucket; a multipart upload's acknowledged parts are the restart marker.

``s3://BUCKET/KEY?endpoint=http://HOST:PORT``.  The resume record is the
store itself: ``ListMultipartUploads`` finds the unfinished upload of a key
and ``ListParts`` the parts it acknowledged, so any machine with the same
credentials can resume what another started, and no local file is kept.
"""

from __future__ import annotations

import base64
import builtins
import calendar
import errno
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from transfercore import Capabilities, Driver, ObjectInfo, OptionSpec, RangeSet, Reader, RestartModel, Writer
from transfercore.contract import LocalFile
from transfercore.driverkit import check_open_write, check_resume
from transfercore.errors import (
    AlreadyExists,
    IsADirectory,
    LocationError,
    NotFound,
    PermissionDenied,
    RestartRejected,
    StorageError,
)
from transfercore.options import choice_option, int_option, size_option, str_option

from .batch import copy_batch
from .layout import LAYOUT_PART, Layout, MiB, check_part_size, infer_part_size
from .reader import S3Reader
from .store import Part, Store, Upload
from .writer import S3Writer

#: S3's longest key, in UTF-8 bytes.
MAX_KEY = 1024
#: Bytes asked for when an object is opened for reading: all of a small one,
#: at most this much fetched for nothing of a large one.
PROBE = 256 * 1024


def _mtime_ns(value: Any) -> int:
    return calendar.timegm(value.utctimetuple()) * 1_000_000_000 if value is not None else 0


class S3Driver(Driver):
    name: ClassVar[str] = "s3"
    options: ClassVar[Mapping[str, OptionSpec]] = {
        "endpoint": str_option("the S3 endpoint URL, e.g. http://127.0.0.1:8333 (default: AWS)"),
        "region": str_option("the region to sign for (default: the profile's, else us-east-1)"),
        "profile": str_option("the shared-credentials profile (default: AWS_PROFILE or 'default')"),
        "part_size": size_option("bytes per multipart part, at least 5MiB (grown so 10,000 parts hold the object)", default=8 * MiB, minimum=1),
        "addressing": choice_option(
            "bucket addressing: path (http://HOST/BUCKET/KEY) or virtual (http://BUCKET.HOST/KEY); "
            "default path with an endpoint, else virtual",
            ("auto", "path", "virtual"),
            default="auto",
        ),
        "checksum": choice_option(
            "the per-part checksum the store verifies before it acknowledges a part", ("crc32c", "md5"), default="crc32c"
        ),
        "writers": int_option("parts uploaded at once", default=4, minimum=1),
    }

    def __init__(self, authority: str = "", options: Mapping[str, Any] | None = None) -> None:
        super().__init__(authority, options)
        if not 3 <= len(authority) <= 63:
            raise LocationError(
                f"s3 location needs a bucket name of 3 to 63 characters, not {authority!r}",
                hint="write s3://BUCKET/KEY?endpoint=http://HOST:PORT",
            )
        check_part_size(self.settings["part_size"])
        addressing = self.settings["addressing"]
        if addressing == "auto":
            addressing = "path" if self.settings["endpoint"] else "virtual"
        writers = self.settings["writers"]
        self.store = Store(
            authority,
            endpoint=self.settings["endpoint"],
            region=self.settings["region"],
            profile=self.settings["profile"],
            addressing=addressing,
            connections=max(64, writers * 2),
        )

    # -- description -----------------------------------------------------------

    def capabilities(self) -> Capabilities:
        part = self.settings["part_size"]
        return Capabilities(
            restart=RestartModel.RANGES,
            max_writers=self.settings["writers"],
            preferred_block_size=part,
            marker_granularity=part,
            atomic_publish=True,
        )

    def close(self) -> None:
        self.store.close()

    def describe(self) -> dict[str, Any]:
        return {"endpoint": self.store.endpoint, "bucket": self.store.bucket}

    # -- names -----------------------------------------------------------------

    def _key(self, path: str) -> str:
        key = path.lstrip("/")
        if not key or key.endswith("/"):
            raise IsADirectory(f"s3://{self.authority}{path} names no object", hint="give s3://BUCKET/KEY")
        if len(key.encode("utf-8")) > MAX_KEY:
            raise LocationError(
                f"key of s3://{self.authority}/{key[:40]}... is {len(key.encode('utf-8'))} bytes long, "
                f"longer than S3's {MAX_KEY}",
                hint="give a shorter key",
            )
        return key

    def _prefix(self, path: str) -> str:
        key = path.strip("/")
        return f"{key}/" if key else ""

    # -- objects ---------------------------------------------------------------

    def stat(self, path: str) -> ObjectInfo:
        self.store.check_bucket()
        if path.strip("/"):
            head = self.store.head(self._key(path.rstrip("/")))
            if head is not None:
                etag = str(head.get("ETag", ""))
                version = str(head.get("VersionId") or "")
                return ObjectInfo(
                    path=path,
                    size=int(head["ContentLength"]),
                    mtime_ns=_mtime_ns(head.get("LastModified")),
                    identity=f"{etag}{':' + version if version else ''}",
                    version=etag,
                )
        if self._is_prefix(path):
            return ObjectInfo(path=path, size=0, mtime_ns=0, is_dir=True, mode=0o755)
        raise NotFound(f"s3://{self.authority}{path} does not exist")

    def _is_prefix(self, path: str) -> bool:
        prefix = self._prefix(path)
        if not prefix:
            return True
        # one key or sub-prefix is enough to know, and far cheaper to parse than 1,000
        page = next(self.store.pages(prefix, page_size=1))
        return bool(page.get("Contents") or page.get("CommonPrefixes"))

    def open_read(self, path: str) -> Reader:
        self.store.check_bucket()
        key = self._key(path)
        # one ranged GET says the size and ETag and, for a small object (most
        # of a tree), brings all of it: one request where a HEAD and a GET were
        first = self.store.get_first(key, PROBE)
        if first is None:
            if self._is_prefix(path):
                raise IsADirectory(f"s3://{self.authority}{path} is a prefix, not an object")
            raise NotFound(f"s3://{self.authority}{path} does not exist")
        size, etag, body = first
        return S3Reader(self.store, key, size, etag, body if len(body) == size else None)

    def open_write(self, path: str, size: int, resume: RangeSet | None = None) -> Writer:
        marker = check_open_write(size, resume, path)
        key = self._key(path)
        self.store.check_bucket()
        layout = Layout.choose(size, self.settings["part_size"])
        if marker is None:
            self.discard_partial(path)
            return self._fresh(key, layout)
        where = self.store.where(key)
        upload = self._newest(key)
        if upload is None:
            raise RestartRejected(f"cannot resume {where}: the store has no unfinished upload of it")
        listed = {p.number: p for p in self.store.parts(key, upload.upload_id)}
        record = listed.pop(LAYOUT_PART, None)
        if record is None or record.etag.strip('"') != hashlib.md5(layout.record()).hexdigest():
            raise RestartRejected(
                f"cannot resume {where}: its unfinished upload was not started for {size} bytes "
                f"in parts of {layout.part_size}" + (" (it has no layout record)" if record is None else "")
            )
        for number, part in listed.items():
            start, stop = layout.span(number) if number <= layout.count else (0, -1)
            if part.size != stop - start:
                raise RestartRejected(
                    f"cannot resume {where}: the store lists part {number} of {part.size} bytes, which an object "
                    f"of {size} bytes in parts of {layout.part_size} does not have"
                )
        check_resume(where, marker, size, size, layout.ranges(listed))
        # only whole parts inside the caller's marker are kept; the others are sent again
        kept = {n: p for n, p in listed.items() if marker.contains(RangeSet.span(*layout.span(n)))}
        return S3Writer(self.store, key, layout, self.settings["checksum"], upload.upload_id, kept)

    def open_new(self, path: str, size: int) -> Writer:
        # the caller never started this object: no unfinished upload to look for
        check_open_write(size, None, path)
        key = self._key(path)
        self.store.check_bucket()
        return self._fresh(key, Layout.choose(size, self.settings["part_size"]))

    def _fresh(self, key: str, layout: Layout) -> S3Writer:
        checksum = self.settings["checksum"]
        if layout.size < layout.part_size:
            return S3Writer(self.store, key, layout, checksum, None)  # one PUT at complete()
        # with CRC32C parts the store can keep the whole object's CRC32C, which
        # checksum() then gives: the object need not be read back to verify it
        upload_id = self.store.create_upload(key, full_crc32c=checksum == "crc32c")
        # the record goes first: no data part is ever listed without it
        self.store.upload_part(key, upload_id, LAYOUT_PART, layout.record(), checksum)
        return S3Writer(self.store, key, layout, checksum, upload_id)

    def checksum(self, path: str, algorithm: str) -> str | None:
        """The store's own checksum of an object sent in one PUT: the CRC32C it
        checked on arrival and keeps (``ChecksumMode``), or the ETag, which is
        then the MD5 of the body.  A multipart object has only composite values
        (a checksum of the parts' checksums, ``-N``): None, and the caller
        reads it back.  Not declared in the capabilities for that reason."""
        if algorithm not in ("crc32c", "md5"):
            return None
        self.store.check_bucket()
        head = self.store.head(self._key(path), checksums=True)
        if head is None:
            raise NotFound(f"s3://{self.authority}{path} does not exist")
        if algorithm == "crc32c":
            value = str(head.get("ChecksumCRC32C") or "")
            if not value or "-" in value or head.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT":
                return None
            try:
                raw = base64.b64decode(value, validate=True)
            except ValueError:
                return None
            return raw.hex() if len(raw) == 4 else None
        etag = str(head.get("ETag", "")).strip('"')
        return etag.lower() if len(etag) == 32 and all(c in "0123456789abcdefABCDEF" for c in etag) else None

    def copy_local_batch(
        self, files: Sequence[LocalFile], algorithm: str | None
    ) -> builtins.list[tuple[str, ObjectInfo] | None] | None:
        """Small local files as single PUTs, ``writers`` at a time (see
        :mod:`.batch`).  The store's answer to each PUT gives the checksum
        (CRC32C or MD5) of the bytes it keeps; other algorithms it cannot."""
        if algorithm not in (None, "crc32c", "md5"):
            return None
        self.store.check_bucket()
        part = self.settings["part_size"]
        small = [f for f in files if f.size < part]
        done = iter(copy_batch(self.store, small, self._key, algorithm, self.settings["checksum"],
                               self.settings["writers"], _mtime_ns))
        # a file of a part or more goes as a multipart upload, the ordinary way
        return [next(done) if f.size < part else None for f in files]

    def _newest(self, key: str) -> Upload | None:
        uploads = [u for u in self.store.uploads(key) if u.key == key]
        return uploads[-1] if uploads else None

    def partial(self, path: str) -> RangeSet:
        key = self._key(path)
        self.store.check_bucket()
        upload = self._newest(key)
        if upload is None:
            return RangeSet()
        parts = [p for p in self.store.parts(key, upload.upload_id) if p.number != LAYOUT_PART]
        part = infer_part_size({p.number: p.size for p in parts}, self.settings["part_size"])
        if part is None or part < 1:
            return RangeSet()
        return RangeSet.of(*((((p.number - 1) * part), (p.number - 1) * part + p.size) for p in parts))

    def discard_partial(self, path: str) -> None:
        key = self._key(path)
        for upload in self.store.uploads(key):
            if upload.key == key:
                self.store.abort_upload(key, upload.upload_id)

    def unfinished(self, prefix: str = "/") -> list[tuple[Upload, list[Part]]]:
        """Every unfinished upload under ``prefix`` with its acknowledged parts
        (abandoned uploads cost storage until aborted)."""
        self.store.check_bucket()
        key = prefix.lstrip("/")
        return [(u, self.store.parts(u.key, u.upload_id)) for u in self.store.uploads(key)]

    # -- namespace ---------------------------------------------------------------

    def list(self, path: str) -> Iterator[ObjectInfo]:
        return self._listing(path, strict=False)

    def scan(self, path: str) -> Iterator[ObjectInfo]:
        """:meth:`list` for a tree copy, which makes one file or directory of
        each name: a key that no such name can hold (an object that is also a
        prefix of other keys, an empty, ``.`` or ``..`` part, a directory
        marker with bytes) raises, naming it, instead of being left out or
        merged with another."""
        return self._listing(path, strict=True)

    def _listing(self, path: str, *, strict: bool) -> Iterator[ObjectInfo]:
        self.store.check_bucket()
        prefix = self._prefix(path)
        base = "/" + prefix
        found: list[ObjectInfo] = []
        for page in self.store.pages(prefix):
            for item in page.get("CommonPrefixes", []):
                name = item["Prefix"][len(prefix):][:-1]
                if strict:
                    self._check_name(item["Prefix"], name, "a prefix")
                found.append(ObjectInfo(path=base + name, size=0, mtime_ns=0, is_dir=True, mode=0o755))
            for item in page.get("Contents", []):
                name = item["Key"][len(prefix):]
                if not name:
                    if strict and int(item.get("Size", 0)):
                        self._unnamable(item["Key"], "it ends with / (a directory's marker) and holds "
                                        f"{int(item['Size'])} bytes, which no directory can keep")
                    continue  # the listed directory's own marker
                if strict:
                    self._check_name(item["Key"], name, "an object")
                etag = str(item.get("ETag", ""))
                found.append(
                    ObjectInfo(
                        path=base + name,
                        size=int(item["Size"]),
                        mtime_ns=_mtime_ns(item.get("LastModified")),
                        identity=etag,
                        version=etag,
                    )
                )
        if not found and prefix and not self._is_prefix(path):
            raise NotFound(f"s3://{self.authority}{path} does not exist")
        found.sort(key=lambda info: info.path)
        if strict:
            for a, b in zip(found, found[1:], strict=False):  # (neighbours)
                if a.path == b.path:
                    self._unnamable(a.path.lstrip("/"), "it is both an object and a prefix of other keys, "
                                    "and a tree holds one file or one directory of a name")
        return iter(found)

    def _check_name(self, key: str, name: str, what: str) -> None:
        if name in ("", ".", ".."):
            self._unnamable(key, f"{what} with an empty, '.' or '..' part, which no path can name")

    def _unnamable(self, key: str, reason: str) -> None:
        raise StorageError(f"s3://{self.authority}/{key} cannot be copied as part of a tree: {reason}",
                           hint="rename the object, or copy it alone by its URL")

    def mkdir(self, path: str) -> None:
        """S3 has no directories: an empty object named ``prefix/`` (as the S3
        console makes) holds an empty one, so that it lists and stats as one."""
        self.store.check_bucket()
        prefix = self._prefix(path)
        if not prefix or self._is_prefix(path):
            raise AlreadyExists(f"s3://{self.authority}{path} already exists", errno=errno.EEXIST)
        if self.store.head(self._key(path.rstrip("/"))) is not None:
            raise AlreadyExists(f"s3://{self.authority}{path} exists as an object", errno=errno.EEXIST)
        self.store.put(self._key_of_prefix(prefix), b"", self.settings["checksum"])

    def mkdirs(self, paths: Sequence[str]) -> builtins.list[BaseException | None]:
        """The directory markers made ``writers`` at a time, a level of the
        tree after the other: a marker made under ``d/`` makes ``d`` exist as a
        prefix, so ``d`` made at the same time could be refused as existing."""
        if not paths:
            return []
        results: builtins.list[BaseException | None] = [None] * len(paths)

        def make(index: int) -> None:
            try:
                self.mkdir(paths[index])
            except Exception as exc:  # noqa: BLE001 - reported per directory
                results[index] = exc

        levels: dict[int, builtins.list[int]] = {}
        for index, path in enumerate(paths):
            levels.setdefault(path.rstrip("/").count("/"), []).append(index)
        with ThreadPoolExecutor(max_workers=max(1, min(self.settings["writers"], len(paths)))) as pool:
            for depth in sorted(levels):
                builtins.list(pool.map(make, levels[depth]))
        return results

    def rmdir(self, path: str) -> None:
        self.store.check_bucket()
        prefix = self._prefix(path)
        if not prefix:
            raise PermissionDenied(f"the bucket s3://{self.authority} cannot be removed", errno=errno.EPERM)
        page = next(self.store.pages(prefix, page_size=2))  # its own marker and one more say enough
        children = [i for i in page.get("Contents", []) if i["Key"] != prefix] + page.get("CommonPrefixes", [])
        if children:
            raise StorageError(f"s3://{self.authority}{path} is not empty", errno=errno.ENOTEMPTY,
                               hint="remove what it holds first")
        if not page.get("Contents"):
            raise NotFound(f"s3://{self.authority}{path} does not exist", errno=errno.ENOENT)
        self.store.delete(prefix)

    def _key_of_prefix(self, prefix: str) -> str:
        if len(prefix.encode("utf-8")) > MAX_KEY:
            raise LocationError(f"s3://{self.authority}/{prefix[:40]}... is longer than S3's {MAX_KEY} bytes")
        return prefix

    def remove(self, path: str) -> None:
        key = self._key(path)
        self.store.check_bucket()
        if self.store.head(key) is None:
            raise NotFound(f"s3://{self.authority}{path} does not exist")
        self.store.delete(key)
