"""Reads of a complete mock object, from a view taken when it was opened."""

from __future__ import annotations

import threading

from transfercore.contract import Reader
from transfercore.driverkit import check_read, read_exact
from transfercore.errors import ReaderClosed

from .faults import FaultState
from .store import ObjectHandle


class MockReader(Reader):
    def __init__(self, handle: ObjectHandle, display: str, faults: FaultState) -> None:
        self._handle = handle
        self._display = display
        self._faults = faults
        self._closed = False
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return self._handle.size

    def read(self, offset: int, length: int) -> bytes:
        size = self._handle.size
        if self._faults.plan.lie == "loose-reads":
            # The lie: bad offsets are bent into the object instead of refused.
            offset, length = min(max(0, int(offset)), size), max(0, int(length))
        else:
            check_read(offset, length, size, self._display)
        if self._closed:
            raise ReaderClosed(f"reader for {self._display} is closed")
        want = min(length, size - offset)
        if self._faults.plan.slow:
            import time

            time.sleep(self._faults.plan.slow)
        return read_exact(self._handle.read(offset, want), offset, want, self._display)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._handle.close()
