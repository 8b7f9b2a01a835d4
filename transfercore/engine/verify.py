"""Verifying the destination as stored, in step with the transfer.

Reading the whole destination back after the last byte is written is a
serial phase as long as one more copy of the object.  When the destination
writer can read back what it made durable (``Writer.read_durable``, an
optional method), a :class:`DurableVerifier` thread instead hashes the
destination in offset order as far as its contiguous durable prefix reaches,
while the streams go on writing later blocks.  Each marker moves that prefix
forward; the final marker covers the whole object, so at the end only the
bytes made durable by that last marker are still to read.

The digest covers every byte of the object as stored, the ranges kept from an
interrupted run included: the prefix starts at the resumed marker's prefix.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..checksums import Hasher
from ..errors import RESUME_HINT, TransferAborted, TransferCoreError
from .buffers import aligned_buffer
from .scheduler import Stopped

ReadInto = Callable[[int, memoryview], None]


class DurableVerifier:
    """Hashes ``[0, size)`` of the destination, never reading past :meth:`advance`'s limit."""

    def __init__(
        self,
        read_into: ReadInto,
        size: int,
        algorithm: str,
        block_size: int,
        *,
        wake: threading.Event | None = None,
    ) -> None:
        if block_size < 1:
            raise ValueError("block_size must be at least 1")
        self._read_into = read_into
        self._size = size
        self._hasher = Hasher(algorithm)
        self._block_size = min(block_size, max(1, size))
        self._wake = wake
        self._cond = threading.Condition()
        self._limit = 0
        self._stopped = False
        self._thread: threading.Thread | None = None
        #: Bytes hashed so far (a prefix of the object).
        self.verified = 0
        self.error: BaseException | None = None

    @property
    def algorithm(self) -> str:
        return self._hasher.algorithm

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="tc-verify", daemon=True)
        self._thread.start()

    def advance(self, durable_prefix_end: int) -> None:
        """The destination's bytes ``[0, durable_prefix_end)`` are durable and final."""
        with self._cond:
            if durable_prefix_end > self._limit:
                self._limit = min(durable_prefix_end, self._size)
                self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the read-back to end; True when it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def finish(self) -> str:
        """Wait until the whole object is hashed and return the digest.

        Call it after the final marker (``advance(size)``); re-raises the
        error that stopped the read-back.
        """
        with self._cond:
            if self._limit < self._size and self.error is None:
                raise TransferCoreError(
                    f"read-back verification was asked to finish at {self._limit} of {self._size} bytes",
                    hint="this is a bug in the engine; the object was written but not verified",
                )
        self.join()
        if self.error is not None:
            raise self.error
        if self.verified != self._size:
            raise TransferAborted("verification stopped on request", hint=RESUME_HINT)
        return self._hasher.hexdigest()

    # -- the thread ----------------------------------------------------------------

    def _next_length(self) -> int:
        with self._cond:
            while self.verified >= self._limit and not self._stopped:
                if self.verified >= self._size:
                    return 0
                self._cond.wait()
            if self._stopped:
                raise Stopped()
            return min(self._block_size, self._limit - self.verified)

    def _work(self) -> None:
        try:
            if self._size == 0:
                return
            # One buffer, reused: memory stays at one block whatever the size.
            buffer = aligned_buffer(self._block_size)
            while self.verified < self._size:
                length = self._next_length()
                if length == 0:
                    break
                view = buffer[:length]
                self._read_into(self.verified, view)
                self._hasher.update(view)
                self.verified += length
        except Stopped:
            pass
        except BaseException as exc:  # reported by finish() and polled by the control thread
            self.error = exc
            if self._wake is not None:
                self._wake.set()
