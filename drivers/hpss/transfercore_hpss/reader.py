"""Reading an HPSS file through PIO, holes included: a gap reported by
``hpss_PIOExecute`` (with 0 or, on some versions, ``HPSS_EOM``) is read as
zeros and the transfer resumes after it."""

from __future__ import annotations

import os
import threading

from transfercore.contract import Reader, check_read
from transfercore.errors import ReaderClosed, TransferCoreError

from . import api
from ._hpss import ffi
from .pio import PioSession


class HpssReader(Reader):
    def __init__(self, path: str, block: int, watchdog: float) -> None:
        self._path = path
        self._size = api.stat(path).size
        self._fd: int | None
        self._fd, width = api.open_file(path, os.O_RDONLY)
        self._lock = threading.Lock()
        self._target: memoryview | None = None
        self._target_start = 0
        self._pio: PioSession | None = None
        try:
            self._pio = PioSession(api.PioOperation.READ, self._fd, block, width, self, watchdog, path)
        except BaseException:
            api.close(self._fd, path)
            raise

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        check_read(offset, length, self._size, self._path)
        end = min(self._size, offset + length)
        if end <= offset:
            return b""
        with self._lock:
            if self._pio is None:
                raise ReaderClosed(f"reader for hpss://{self._path} is closed")
            out = bytearray(end - offset)  # zeros: holes need no copying
            self._target, self._target_start = memoryview(out), offset
            try:
                self._fill(offset, end)
            finally:
                self._target = None
            return bytes(out)

    def _fill(self, pos: int, end: int) -> None:
        assert self._pio is not None and self._fd is not None
        while pos < end:
            result = self._pio.execute(pos, end - pos)
            if self._pio.error is not None:
                raise self._pio.error
            moved = result.moved or 0
            gap = result.gap_length
            if result.rc not in (0, api.Code.EOM) or (result.rc == api.Code.EOM and gap == 0):
                api.check(result.rc if result.rc < 0 else -5, f"hpss_PIOExecute({self._path}) at {pos}")
                raise TransferCoreError(f"hpss_PIOExecute({self._path}) stopped at {pos} before {end}")
            if gap and result.gap_offset != moved:
                raise TransferCoreError(f"inconsistent gap at {pos} of {self._path}: {result}")
            if moved == 0 and gap == 0:
                raise TransferCoreError(f"hpss_PIOExecute({self._path}) moved nothing at {pos}")
            pos += moved + gap

    def on_block(self, offset: int, length_ptr: object, buffer_ptr: object) -> int:
        target = self._target
        n = int(length_ptr[0])  # type: ignore[index]
        if target is None:
            return 1
        rel = offset - self._target_start
        if rel < 0 or rel + n > len(target):
            return 1
        target[rel : rel + n] = ffi.buffer(buffer_ptr[0], n)  # type: ignore[index]
        return 0

    def close(self) -> None:
        with self._lock:
            pio, self._pio = self._pio, None
            fd, self._fd = self._fd, None
        if pio is not None:
            pio.close()
        if fd is not None:
            api.close(fd, self._path)
        if pio is not None and pio.error is not None:
            raise pio.error
