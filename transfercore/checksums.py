"""Whole-object checksums, computed incrementally.

Every algorithm comes from a well-kept library (``hashlib``, ``zlib``, the
``crc32c`` package); none is hand-written.  Names are accepted in the forms
GridFTP uses (``MD5``, ``ADLER32``, ``SHA256``) and common variants
(``sha-256``, ``crc-32c``); :func:`canonical` turns any of them into the
lowercase canonical name used in capabilities, the journal and events.

Digests are lowercase hex.  ADLER32 and CRC32C are printed as 8 hex digits,
as GridFTP's ``CKSM`` reply does.
"""

from __future__ import annotations

import hashlib
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .contract import Reader
from .errors import ShortRead, UnknownChecksum

Buffer = bytes | bytearray | memoryview

#: Canonical names, in the order they are listed to users.
ALGORITHMS: tuple[str, ...] = ("md5", "adler32", "crc32c", "sha256", "sha1", "sha512")

#: The default: hardware-accelerated and strong enough to catch corruption,
#: so verification costs little next to the I/O.
DEFAULT_ALGORITHM = "crc32c"

_ALIASES = {
    "md5": "md5",
    "adler32": "adler32",
    "adler-32": "adler32",
    "crc32c": "crc32c",
    "crc-32c": "crc32c",
    "sha256": "sha256",
    "sha-256": "sha256",
    "sha1": "sha1",
    "sha-1": "sha1",
    "sha512": "sha512",
    "sha-512": "sha512",
}


def canonical(name: str) -> str:
    """The canonical name of a checksum algorithm; :class:`UnknownChecksum` if unknown."""
    key = name.strip().lower() if isinstance(name, str) else ""
    try:
        return _ALIASES[key]
    except KeyError:
        raise UnknownChecksum(
            f"unknown checksum algorithm {name!r}",
            hint=f"use one of {', '.join(a.upper() for a in ALGORITHMS)}",
        ) from None


def gridftp_name(name: str) -> str:
    """The name GridFTP's ``CKSM`` uses (``SHA256``, ``ADLER32``)."""
    return canonical(name).upper()


class Hasher:
    """An incremental checksum with ``update`` and ``hexdigest``.

    Not thread-safe: feed it from one thread, in offset order.
    """

    def __init__(self, algorithm: str) -> None:
        self.algorithm = canonical(algorithm)
        self.count = 0
        self._value = 1 if self.algorithm == "adler32" else 0
        self._hash = hashlib.new(self.algorithm) if self.algorithm not in ("adler32", "crc32c") else None
        self._crc32c: Any = None
        if self.algorithm == "crc32c":
            # imported when first asked for: the package reads its own distribution
            # metadata at import (importlib.metadata, ~50 ms of CPU), which processes
            # that never compute a CRC32C (a GridFTP server session) should not pay
            import crc32c

            self._crc32c = crc32c.crc32c

    def update(self, data: Buffer) -> None:
        # zlib and crc32c take any buffer; hashlib too.  All three release the
        # GIL on large buffers, so hashing overlaps other threads' I/O.
        if self._hash is not None:
            self._hash.update(data)
        elif self.algorithm == "adler32":
            self._value = zlib.adler32(data, self._value)
        else:
            self._value = self._crc32c(data, self._value)
        self.count += len(data)

    def hexdigest(self) -> str:
        if self._hash is not None:
            return self._hash.hexdigest()
        return f"{self._value:08x}"


def new(algorithm: str) -> Hasher:
    return Hasher(algorithm)


def digest_bytes(algorithm: str, data: Buffer) -> str:
    """The checksum of ``data`` in one call."""
    hasher = Hasher(algorithm)
    hasher.update(data)
    return hasher.hexdigest()


def _blocks(size: int, block_size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, size, block_size):
        yield start, min(block_size, size - start)


def checksum_reader(
    reader: Reader,
    algorithm: str,
    *,
    block_size: int = 4 * 1024 * 1024,
    parallel: int = 2,
    on_progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
) -> str:
    """Read a whole object in order and return its checksum.

    ``parallel`` reads run ahead of the hashing so I/O overlaps the hash; at
    most ``parallel + 1`` blocks are held at once.  A short read is an error,
    never hashed (a checksum must fail on an I/O error, not hash garbage).
    ``parallel=1`` reads strictly one block at a time, in order, for readers
    that must be read in order.
    """
    hasher = Hasher(algorithm)
    size = reader.size
    if block_size < 1:
        raise ValueError("block_size must be at least 1")

    def read(offset: int, length: int) -> bytes:
        if stop is not None and stop.is_set():
            from .errors import TransferAborted

            raise TransferAborted("checksum stopped on request")
        data = reader.read(offset, length)
        if len(data) != length:
            raise ShortRead("the object being checksummed", offset, len(data), length)
        return data

    if parallel <= 1 or size <= block_size:
        for offset, length in _blocks(size, block_size):
            hasher.update(read(offset, length))
            if on_progress:
                on_progress(length)
        return hasher.hexdigest()

    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="tc-checksum") as pool:
        pending = []
        blocks = _blocks(size, block_size)
        try:
            for offset, length in blocks:
                pending.append(pool.submit(read, offset, length))
                if len(pending) > parallel:
                    data = pending.pop(0).result()
                    hasher.update(data)
                    if on_progress:
                        on_progress(len(data))
            while pending:
                data = pending.pop(0).result()
                hasher.update(data)
                if on_progress:
                    on_progress(len(data))
        finally:
            for future in pending:
                future.cancel()
    return hasher.hexdigest()
