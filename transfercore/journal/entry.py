"""A journal row as a value: where the transfer stands, its marker, its source's
identity and, once finished, the destination it published."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs

from ..ranges import RangeSet
from .identity import SourceIdentity


class TransferState(enum.Enum):
    """Where a transfer stands."""

    RUNNING = "running"
    #: Stopped by Ctrl-C, a signal or a request; resumable.
    INTERRUPTED = "interrupted"
    #: Stopped by an error; resumable once the cause is fixed.
    FAILED = "failed"
    #: All bytes written but the checksums differ; not resumed.
    MISMATCH = "mismatch"
    DONE = "done"


@attrs.frozen
class JournalEntry:
    """One row of the journal."""

    id: int
    source: str
    destination: str
    source_identity: SourceIdentity
    options: Mapping[str, Any]
    marker: RangeSet
    state: TransferState
    message: str
    checksum_algorithm: str
    checksum: str
    created: float
    updated: float
    #: Process id and start time (seconds since the epoch) of the latest run.
    owner_pid: int = 0
    owner_started: float = 0.0
    #: The destination as published by a finished run (size -1 when unknown).
    destination_size: int = -1
    destination_mtime_ns: int = 0
    destination_identity: str = ""

    @property
    def size(self) -> int:
        return self.source_identity.size

    @property
    def durable_bytes(self) -> int:
        return self.marker.total()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "destination": self.destination,
            "size": self.size,
            "durable_bytes": self.durable_bytes,
            "marker": str(self.marker),
            "state": self.state.value,
            "message": self.message,
            "checksum_algorithm": self.checksum_algorithm,
            "checksum": self.checksum,
            "created": self.created,
            "updated": self.updated,
            "options": dict(self.options),
            "owner_pid": self.owner_pid,
            "owner_started": self.owner_started,
        }
