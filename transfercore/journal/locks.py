"""The runs of a journal: the lock file a run holds on its destination, kept
beside the journal (see :mod:`transfercore.runlock`), and what the lock tells
of a row whose run is gone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..runlock import RunLock, holder, lock_name
from .entry import JournalEntry, TransferState


class RunLocks:
    """The run locks of the journal at :attr:`path`; a part of :class:`~transfercore.journal.Journal`."""

    path: Path

    def lock_path(self, destination: str) -> Path:
        """The lock file a run on ``destination`` holds (see :mod:`transfercore.runlock`)."""
        return self.path.parent / "locks" / lock_name(destination)

    def claim(self, source: str, destination: str) -> RunLock:
        """Hold ``destination`` for this process until the returned lock is released.

        Raises :class:`~transfercore.runlock.Busy`, naming the other run, when
        another process holds it."""
        return RunLock.acquire(self.lock_path(destination), source=source, destination=destination)

    def holder(self, destination: str) -> dict[str, Any] | None:
        """Who holds ``destination`` now (pid, start time, source), or None."""
        return holder(self.lock_path(destination))

    def effective_state(self, entry: JournalEntry) -> TransferState:
        """The entry's state, with a run whose process is gone shown as interrupted."""
        if entry.state is TransferState.RUNNING and self.holder(entry.destination) is None:
            return TransferState.INTERRUPTED
        return entry.state
