"""Ctrl-C and SIGTERM: ask a running copy to stop at its next step.

A Python signal handler runs in the main thread between two bytecodes, possibly
while that thread holds a lock the cancellation needs (a ``threading.Event``'s,
mid ``wait()`` or ``clear()``): calling ``cancel()`` from the handler can then
wait forever on the main thread itself.  So the handler only writes one byte
to a pipe, which takes no lock, and a small thread reads it and cancels.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any


class Stop:
    """Ctrl-C and SIGTERM both ask ``cancel`` to stop the copy at its next step
    (its durable state is kept); a second Ctrl-C stops at once."""

    def __init__(self, cancel: Callable[[], None]) -> None:
        self.cancel = cancel
        self.previous: dict[int, Any] = {}
        self._read_fd = self._write_fd = -1
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Stop:
        self._read_fd, self._write_fd = os.pipe()
        self._thread = threading.Thread(target=self._relay, name="stop on signal", daemon=True)
        self._thread.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        os.write(self._write_fd, b"\0")
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def _relay(self) -> None:
        # Ends when __exit__ closes the pipe's write end (read returns b"").
        while os.read(self._read_fd, 64):
            self.cancel()

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        os.close(self._write_fd)
        if self._thread is not None:
            self._thread.join(5)
        os.close(self._read_fd)
