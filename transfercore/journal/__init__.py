"""The transfer journal: a durable record of every transfer and its restart marker.

One SQLite database (WAL mode, ``synchronous=FULL``, so a committed row
survives a power loss) under the user's state directory, or at a path given
by option.  One row per (source, destination) pair: running the same copy
again finds the row and resumes from its marker.

A marker is written here only after the destination driver returned it from
``Writer.durable()``; the journal never holds a byte the storage did not make
durable.

The package's parts, by job: :mod:`.storage` (the SQLite rows), :mod:`.entry`
(a row as a value), :mod:`.identity` (the source identity a resume checks) and
:mod:`.locks` (the lock a run holds on its destination).
"""

from __future__ import annotations

from .entry import JournalEntry, TransferState
from .identity import SourceIdentity
from .storage import BUSY_TIMEOUT, SCHEMA_VERSION, Journal, JournalError

__all__ = [
    "BUSY_TIMEOUT",
    "Journal",
    "JournalEntry",
    "JournalError",
    "SCHEMA_VERSION",
    "SourceIdentity",
    "TransferState",
]
