"""Ranged GETs of one object, each conditional on the ETag it had when opened.

A source that is replaced or rewritten while it is read fails the condition
(412) and the read raises ``SourceChanged`` instead of mixing two versions.
"""

from __future__ import annotations

from transfercore import Reader
from transfercore.driverkit import check_read, read_exact

from .store import Store


class S3Reader(Reader):
    def __init__(self, store: Store, key: str, size: int, etag: str, whole: bytes | None = None) -> None:
        self._store, self._key, self._size, self._etag = store, key, size, etag
        #: The whole object, when opening it brought all of it (as of ``etag``).
        self._whole = whole

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        check_read(offset, length, self._size, self._store.where(self._key))
        want = min(length, self._size - offset)
        if want == 0:
            return b""
        if self._whole is not None:
            return self._whole[offset : offset + want]
        data = self._store.get_range(self._key, offset, offset + want, self._etag)
        return read_exact(data, offset, want, self._store.where(self._key))
