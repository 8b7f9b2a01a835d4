"""One worker of a ``serve --workers N``: its place, the socket it accepts from, the state it shares."""

from __future__ import annotations

import socket

import attrs

from ..service.supervisor import WorkerSpec
from .sharedstate import SharedRegion


@attrs.frozen
class Worker:
    index: int
    count: int
    #: the supervisor's listening socket
    listening: socket.socket
    region: SharedRegion
    #: workers that had this index before this one
    generation: int = 0

    @classmethod
    def from_spec(cls, spec: WorkerSpec) -> Worker:
        listening = socket.socket(fileno=spec.listen_fd)
        listening.setblocking(False)
        return cls(spec.index, spec.count, listening, SharedRegion(spec.shared_fd), spec.generation)

    def connected(self) -> None:
        self.region.add_connections(self.index, 1)

    def disconnected(self) -> None:
        self.region.add_connections(self.index, -1)

    def ahead(self) -> bool:
        """This worker has more connections than another: it lets that one accept the next."""
        counts = self.region.connections(self.count)
        return counts[self.index] > min(counts)
