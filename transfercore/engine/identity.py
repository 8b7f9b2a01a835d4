"""The source's identity, recorded so that a resume never mixes two versions.

Size and modification time catch most changes; a hash of a few sampled
blocks (start, middle, end) catches an in-place rewrite that kept both, and
the driver's content version (``ObjectInfo.version``, on POSIX the inode
change time, which no program can set back) one outside the samples.
"""

from __future__ import annotations

import hashlib

from ..contract import ObjectInfo, Reader
from ..errors import ShortRead
from ..journal import SourceIdentity

SAMPLE_SIZE = 64 * 1024


def sample_offsets(size: int, sample: int = SAMPLE_SIZE) -> list[int]:
    """Ascending, non-overlapping offsets of the sampled blocks."""
    if size <= 3 * sample:
        return [0] if size else []
    return [0, (size // 2) // sample * sample, size - sample]


def fingerprint(reader: Reader, size: int, sample: int = SAMPLE_SIZE) -> str:
    digest = hashlib.sha256(f"{size}:".encode())
    for offset in sample_offsets(size, sample):
        length = min(sample, size - offset) if size > 3 * sample else size
        data = reader.read(offset, length)
        if len(data) != length:
            raise ShortRead("the source", offset, len(data), length)
        digest.update(f"{offset}:".encode())
        digest.update(data)
    return digest.hexdigest()[:32]


def source_identity(info: ObjectInfo, reader: Reader) -> SourceIdentity:
    return SourceIdentity(
        size=info.size,
        mtime_ns=info.mtime_ns,
        identity=info.identity,
        fingerprint=fingerprint(reader, info.size),
        version=info.version,
    )


def stat_changes(before: ObjectInfo, after: ObjectInfo | None) -> list[str]:
    """What the storage's own description says changed since ``before`` (``after``
    is None when the object is gone)."""
    if after is None:
        return ["it was removed"]
    what = []
    if after.size != before.size:
        what.append(f"size {before.size} -> {after.size}")
    if after.mtime_ns != before.mtime_ns:
        what.append("modification time changed")
    if before.identity and after.identity != before.identity:
        what.append("the object was replaced")
    if before.version and after.version != before.version:
        what.append("it was written to (its change time moved)")
    return what


def changes_during(before: ObjectInfo, after: ObjectInfo | None, identity: SourceIdentity, reader: Reader) -> list[str]:
    """What changed in the source since ``before`` was taken at the start of a copy;
    the samples are read again only when nothing else differs."""
    what = stat_changes(before, after)
    if not what and fingerprint(reader, before.size) != identity.fingerprint:
        what.append("content changed")
    return what
