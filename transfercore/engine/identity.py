"""The source's identity, recorded so that a resume never mixes two versions.

Size and modification time catch most changes; a hash of a few sampled
blocks (start, middle, end) catches an in-place rewrite that kept both.
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
    )
