"""Positional reads of a complete file, safe from several threads."""

from __future__ import annotations

import os
import threading

from transfercore.contract import Reader
from transfercore.errors import RangeSyntaxError, StorageError, WriterClosed, from_oserror


class PosixReader(Reader):
    def __init__(self, fd: int, size: int, display: str) -> None:
        self._fd = fd
        self._size = size
        self._display = display
        self._lock = threading.Lock()
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        if type(offset) is not int or offset < 0 or offset > self._size:
            raise RangeSyntaxError(f"read offset {offset!r} of {self._display} is outside 0-{self._size}")
        if type(length) is not int or length < 0:
            raise RangeSyntaxError(f"read length {length!r} of {self._display} is not a non-negative number")
        want = min(length, self._size - offset)
        if self._closed:
            raise WriterClosed(f"reader for {self._display} is closed")
        chunks: list[bytes] = []
        got = 0
        while got < want:
            try:
                chunk = os.pread(self._fd, want - got, offset + got)
            except OSError as exc:
                raise from_oserror(exc, f"cannot read {self._display} at {offset + got}") from exc
            if not chunk:
                raise StorageError(
                    f"{self._display} ended at {offset + got}, before its size {self._size}: "
                    "it was truncated while being read",
                    hint="read it again once nothing else changes it",
                )
            chunks.append(chunk)
            got += len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        os.close(self._fd)
