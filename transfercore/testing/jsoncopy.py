"""A ``transfercore copy --json`` process whose events a test reads while it runs.

Kill tests wait for a point in the copy (a file published, a range in flight), kill the
whole process group there and run the command again; this holds the process, its events
and its error output for them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any


class JsonCopy:
    """A copy command started in its own process group, its JSON events read as they come."""

    def __init__(self, argv: list[str], *, timeout: float = 300.0, poll: float = 0.01) -> None:
        self.timeout = timeout
        self.poll = poll
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.events: list[dict[str, Any]] = []
        #: ``file-done`` events seen so far (files published)
        self.published = 0
        self._err: list[str] = []
        self._readers = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=lambda: self._err.extend(self.proc.stderr or ()), daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            self.events.append(event)
            if event.get("event") == "file-done":
                self.published += 1

    def wait_until(self, what: Callable[[], object], timeout: float | None = None) -> None:
        """Poll ``what`` until true; fail if the copy ends first or the deadline passes."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not what():
            assert self.proc.poll() is None, f"the copy ended ({self.proc.returncode}) before the kill point"
            assert time.monotonic() < deadline, "the kill point never came"
            time.sleep(self.poll)

    def finish(self, timeout: float | None = None) -> tuple[int, str]:
        """Wait for the command to end (killing it at the deadline); its exit code and error output."""
        try:
            self.proc.wait(timeout=self.timeout if timeout is None else timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        for reader in self._readers:
            reader.join(timeout=30)
        return self.proc.returncode, "".join(self._err)

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.finish()


__all__ = ["JsonCopy"]
