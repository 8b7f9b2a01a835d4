"""Small local files into a bucket as single PUTs: a tree copy's fast path.

An object smaller than one part goes in one ``PutObject``, which is atomic:
the store keeps nothing under the key until the whole body arrived and
matched the checksum sent with it, so such an object has no restart point
and needs none.  The store's answer is the verification: it refuses a body
whose CRC32C (or Content-MD5) differs, and answers with the checksum it
checked and keeps and the ETag, the MD5 of the body it stored; a file is
reported copied only when that answer names the digests of the bytes read.
The published objects' facts (size, time, ETag) come from one listing per
directory rather than a ``HeadObject`` per file: a tree of small files costs
one PUT per file, as with other S3 tools.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
import crc32c

from transfercore import ObjectInfo
from transfercore.contract import LocalFile
from transfercore.errors import TransferCoreError

from .store import Store


@attrs.frozen
class Sent:
    """One file the store acknowledged: where, and what the store answered."""

    file: LocalFile
    key: str
    checksum: str
    etag: str
    version: str


def read_unchanged(file: LocalFile) -> bytes | None:
    """The bytes of ``file`` if it is still the regular file the walk saw
    (device, inode, size, time) before and after the read; else None."""
    try:
        fd = os.open(file.source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode) or (before.st_dev, before.st_ino) != (file.dev, file.ino):
            return None
        if (before.st_size, before.st_mtime_ns) != (file.size, file.mtime_ns):
            return None
        chunks: list[bytes] = []
        left = file.size + 1  # one byte more: a file that grew is noticed
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        after = os.fstat(fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) != file.size or (after.st_size, after.st_mtime_ns) != (file.size, file.mtime_ns):
        return None
    return data


def confirmed(response: dict[str, Any], data: bytes, crc: int) -> bool:
    """Whether the store's answer to a PUT names the digest of ``data``: its
    ETag is the body's MD5, or the CRC32C it checked is ``crc``."""
    etag = str(response.get("ETag", "")).strip('"').lower()
    if len(etag) == 32 and etag == hashlib.md5(data).hexdigest():
        return True
    value = str(response.get("ChecksumCRC32C") or "")
    return bool(value) and value == base64.b64encode(crc.to_bytes(4, "big")).decode()


def put_one(store: Store, file: LocalFile, key: str, algorithm: str | None, checksum: str) -> Sent | None:
    """Read ``file`` and PUT it under ``key``; None when it changed, the store
    refused it, or the answer does not confirm the bytes (then nothing of this
    call stays under the key)."""
    data = read_unchanged(file)
    if data is None:
        return None
    crc = crc32c.crc32c(data)
    try:
        response = store.put_object(key, data, checksum)
    except TransferCoreError:
        return None  # copied again the ordinary way, which reports what is wrong
    if not confirmed(response, data, crc):
        try:
            store.delete(key)
        except TransferCoreError:
            pass
        return None
    value = f"{crc:08x}" if algorithm == "crc32c" else hashlib.md5(data).hexdigest() if algorithm == "md5" else ""
    return Sent(file, key, value, str(response["ETag"]), str(response.get("VersionId") or ""))


def listed_facts(store: Store, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The listing entries of ``keys``: one listing of each parent prefix,
    from just before the smallest of its keys to past the largest."""
    by_parent: dict[str, list[str]] = {}
    for key in keys:
        by_parent.setdefault(key[: key.rfind("/") + 1], []).append(key)
    found: dict[str, dict[str, Any]] = {}
    for parent, names in by_parent.items():
        wanted = set(names)
        # a proper prefix sorts before the key itself, and few keys lie between
        start, last = min(names)[:-1], max(names)
        for page in store.pages(parent, start_after=start):
            for item in page.get("Contents", []):
                if item["Key"] in wanted:
                    found[item["Key"]] = item
            contents = page.get("Contents", [])
            if contents and contents[-1]["Key"] >= last:
                break
    return found


def copy_batch(
    store: Store,
    files: Sequence[LocalFile],
    key_of: Callable[[str], str],
    algorithm: str | None,
    checksum: str,
    threads: int,
    mtime_ns: Callable[[Any], int],
) -> list[tuple[str, ObjectInfo] | None]:
    """Each file PUT whole (``threads`` at a time), its acknowledgement checked,
    and its published facts listed: one entry per file, as
    :meth:`Driver.copy_local_batch` describes."""

    def send(file: LocalFile) -> Sent | None:
        try:
            key = key_of(file.path)
        except TransferCoreError:
            return None
        return put_one(store, file, key, algorithm, checksum)

    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(files)))) as pool:
        sent = list(pool.map(send, files))
    keys = [s.key for s in sent if s is not None]
    try:
        listed = listed_facts(store, keys) if keys else {}
    except TransferCoreError:
        listed = {}
    out: list[tuple[str, ObjectInfo] | None] = []
    for item in sent:
        if item is None:
            out.append(None)
            continue
        entry = listed.get(item.key)
        if entry is None or entry.get("ETag") != item.etag or int(entry["Size"]) != item.file.size:
            # not (yet) listed as sent: ask for the object itself
            try:
                head = store.head(item.key)
            except TransferCoreError:
                head = None
            if head is None or head.get("ETag") != item.etag or int(head["ContentLength"]) != item.file.size:
                out.append(None)  # replaced by another writer since: copied again the ordinary way
                continue
            entry = {"LastModified": head.get("LastModified")}
        identity = f"{item.etag}{':' + item.version if item.version else ''}"
        info = ObjectInfo(path=item.file.path, size=item.file.size, mtime_ns=mtime_ns(entry.get("LastModified")),
                          identity=identity, version=item.etag)
        out.append((item.checksum, info))
    return out
