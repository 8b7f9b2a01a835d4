"""This run's row in the journal: found, begun, its markers, how it ended.

Without a journal every method finds nothing and records nothing: such a
run starts from zero and leaves no trace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..journal import Journal, JournalEntry, SourceIdentity, TransferState
from ..ranges import RangeSet


def _ignore(entry: JournalEntry | None) -> None:
    pass


class RunRecord:
    """The journal's row of ``source`` -> ``destination`` (keyed by the objects, not
    by how they were opened), as far as this run knows it."""

    def __init__(
        self,
        journal: Journal | None,
        source: str,
        destination: str,
        *,
        on_entry: Callable[[JournalEntry | None], None] = _ignore,
    ) -> None:
        self.journal = journal
        self.source = source
        self.destination = destination
        # Told of every new row at once, so that the transfer's id is known
        # while it runs (a JSON listener names it in every event).
        self._on_entry = on_entry
        self._entry: JournalEntry | None = None

    @property
    def entry(self) -> JournalEntry | None:
        return self._entry

    @entry.setter
    def entry(self, value: JournalEntry | None) -> None:
        self._entry = value
        self._on_entry(value)

    @property
    def id(self) -> int | None:
        return self._entry.id if self._entry is not None else None

    def find(self) -> JournalEntry | None:
        return self.journal.find(self.source, self.destination) if self.journal is not None else None

    def begin(
        self,
        identity: SourceIdentity,
        options: Mapping[str, Any],
        *,
        marker: RangeSet | None = None,
        checksum_algorithm: str = "",
    ) -> None:
        """Start (or restart) the row; ``marker``: what the destination accepted to resume."""
        if self.journal is not None:
            self.entry = self.journal.begin(
                self.source, self.destination, identity, options,
                marker=marker, checksum_algorithm=checksum_algorithm,
            )

    def record_marker(self, marker: RangeSet) -> None:
        if self._entry is not None and self.journal is not None:
            self.journal.record_marker(self._entry.id, marker)

    def finish(
        self,
        state: TransferState,
        *,
        message: str = "",
        checksum: str | None = None,
        destination: tuple[int, int, str] | None = None,
    ) -> None:
        if self._entry is not None and self.journal is not None:
            self.journal.finish(self._entry.id, state, message=message, checksum=checksum, destination=destination)
