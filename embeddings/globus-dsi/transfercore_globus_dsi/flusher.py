"""One durability thread per session, for all its uploads.

``durable()`` (``fdatasync``, the resume record) never runs on a Globus
thread while data arrive: a Python thread of the session's own calls it, on
each upload's period, and starts writeback in between (C data path).  One
thread for the session rather than one per upload: a tree of small files is
one upload after another, and starting and joining a thread for each cost
more (measured on a loaded 2-core machine: a sixth of a 600-file session's
time) than the uploads' own Python.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

log = logging.getLogger("transfercore.globus_dsi")


class Ticking(Protocol):
    #: held while the thread works on the upload: :meth:`Flusher.remove` waits for it
    tick_lock: threading.Lock

    def tick_every(self) -> float: ...

    def tick(self) -> None: ...


class Flusher:
    """The session's durability thread; started with its first upload."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._uploads: dict[int, tuple[Ticking, float]] = {}
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, upload: Ticking) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the session is closing")
            # first look one period from now
            self._uploads[id(upload)] = (upload, time.monotonic() + upload.tick_every())
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tc-dsi-durable", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def remove(self, upload: Ticking) -> None:
        """No look at ``upload`` after this returns (one under way is waited for)."""
        with self._cond:
            self._uploads.pop(id(upload), None)
        with upload.tick_lock:
            pass

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._uploads.clear()
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._uploads and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                now = time.monotonic()
                first = min(due for _, due in self._uploads.values())
                if first > now:
                    self._cond.wait(first - now)
                    continue
                due_now = [u for u, due in self._uploads.values() if due <= now]
                for u in due_now:
                    self._uploads[id(u)] = (u, now + u.tick_every())
            for u in due_now:
                with u.tick_lock:
                    with self._cond:
                        if id(u) not in self._uploads:
                            continue  # removed meanwhile: finished
                    try:
                        u.tick()
                    except BaseException:  # noqa: BLE001 - the upload records its own failure
                        log.exception("the durability thread failed on an upload")


__all__ = ["Flusher"]
