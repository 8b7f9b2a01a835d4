"""What the worker processes of one ``serve --workers N`` share: tables of fixed records.

The session limits, the failed-login delays and the upload locks must hold
for the server as a whole, not for each worker, or a client would get ``N``
times its share and two workers could write one partial object.  They live
in one shared memory file (a ``memfd``) that the supervisor creates and each
worker maps; a POSIX record lock on it orders the changes.  The kernel drops
a dead worker's record lock with it, so a crashed worker cannot wedge the
others, and the supervisor clears a dead worker's records
(:meth:`SharedRegion.forget_worker`) before it starts the next one.

Records are plain ``struct`` layouts: fixed sizes, so a worker finds any
record by its index without parsing the others.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import struct
from collections.abc import Iterator

import attrs

#: Every table's capacity; a connection, a session or an upload takes one record.
CAPACITY = 4096


@attrs.frozen
class Table:
    """One array of records in the region, and where its count of records in use is kept."""

    offset: int
    layout: struct.Struct
    #: the offset of the table's high-water mark: records at and above it were never used
    mark: int
    capacity: int = CAPACITY

    @property
    def size(self) -> int:
        return self.layout.size * self.capacity

    def at(self, index: int) -> int:
        return self.offset + index * self.layout.size


#: id, worker, state, busy, connected_at, last_command, address
SLOT = struct.Struct("<qiBB2xdd64s")
#: count, last, next_allowed, address
FAILURE = struct.Struct("<i4xdd64s")
#: key digest, worker, since, owner
UPLOAD = struct.Struct("<16si4xd96s")
#: the key digest of an upload record that holds nothing
NO_UPLOAD = bytes(16)
#: per worker: its open connections (written by that worker alone), its slots other workers evicted
LOAD = struct.Struct("<qq")
#: one 8-byte number
NUMBER = struct.Struct("<q")
#: per worker: its figures for the metrics endpoint (JSON, length first)
STATS = struct.Struct("<q32760s")
#: the most workers a region has room for
MAX_WORKERS = 64

# slot states
FREE, WAITING, SESSION, EVICTED_WAITING, EVICTED_SESSION = range(5)


class SharedRegion:
    """The shared memory file and its tables.

    Each table is used from its lowest free record up and remembers the
    highest it ever used, so a lookup reads as many records as there were
    connections (or uploads) at once, not the whole table."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        marks = 3 * NUMBER.size
        self.slots = Table(marks, SLOT, 0)
        self.failures = Table(self.slots.offset + self.slots.size, FAILURE, NUMBER.size)
        self.uploads = Table(self.failures.offset + self.failures.size, UPLOAD, 2 * NUMBER.size)
        self.load = Table(self.uploads.offset + self.uploads.size, LOAD, -1, MAX_WORKERS)
        self.stats = Table(self.load.offset + self.load.size, STATS, -1, MAX_WORKERS)
        self.size = self.stats.offset + self.stats.size
        if os.fstat(fd).st_size < self.size:
            os.ftruncate(fd, self.size)
        self.map = mmap.mmap(fd, self.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)

    @classmethod
    def create(cls) -> SharedRegion:
        """A new zeroed region whose descriptor is passed on to the workers."""
        fd = os.memfd_create("transfercore-serve", 0)  # no flags: the descriptor is inherited
        return cls(fd)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        # One caller at a time per process (the event loop): POSIX record locks do not
        # exclude the threads of one process, only processes.
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)

    # -- records ------------------------------------------------------------------------

    def read(self, table: Table, index: int) -> tuple:  # type: ignore[type-arg]
        return table.layout.unpack_from(self.map, table.at(index))

    def write(self, table: Table, index: int, *values: object) -> None:
        table.layout.pack_into(self.map, table.at(index), *values)

    def clear(self, table: Table, index: int) -> None:
        start = table.at(index)
        self.map[start:start + table.layout.size] = bytes(table.layout.size)

    def used(self, table: Table) -> int:
        """How many records from the start of ``table`` have ever been used."""
        return int(NUMBER.unpack_from(self.map, table.mark)[0])

    def records(self, table: Table) -> Iterator[tuple[int, tuple]]:  # type: ignore[type-arg]
        """Every record ever used, with its index (one slice of the map, then plain unpacking)."""
        data = self.map[table.offset:table.at(self.used(table))]
        return enumerate(table.layout.iter_unpack(data))

    def spare(self, table: Table, free: int | None) -> int | None:
        """A record to fill: ``free`` (one found empty among :meth:`records`), else the next never used.

        ``None`` when the table is full.  Under the lock."""
        if free is not None:
            return free
        used = self.used(table)
        if used >= table.capacity:
            return None
        NUMBER.pack_into(self.map, table.mark, used + 1)
        return used

    def forget_worker(self, worker: int) -> None:
        """Clear what a worker that is gone held: its connections and its uploads."""
        with self.locked():
            for index, rec in self.records(self.slots):
                if rec[2] != FREE and rec[1] == worker:
                    self.clear(self.slots, index)
            for index, rec in self.records(self.uploads):
                if rec[0] != NO_UPLOAD and rec[1] == worker:
                    self.clear(self.uploads, index)
            self.clear(self.load, worker)

    # -- per worker ---------------------------------------------------------------------

    def connections(self, count: int) -> list[int]:
        """The open connections of workers ``0`` to ``count - 1``."""
        return [NUMBER.unpack_from(self.map, self.load.at(i))[0] for i in range(count)]

    def add_connections(self, worker: int, change: int) -> None:
        """Only ``worker`` itself changes its count: no lock needed."""
        at = self.load.at(worker)
        NUMBER.pack_into(self.map, at, NUMBER.unpack_from(self.map, at)[0] + change)

    def evictions(self, worker: int) -> int:
        """Slots of ``worker`` others evicted and it has not taken yet (a read: no lock needed)."""
        return int(NUMBER.unpack_from(self.map, self.load.at(worker) + NUMBER.size)[0])

    def set_evictions(self, worker: int, count: int) -> None:
        """Under the lock."""
        NUMBER.pack_into(self.map, self.load.at(worker) + NUMBER.size, count)

    def put_stats(self, worker: int, data: bytes) -> bool:
        """Publish ``worker``'s figures; ``False`` when they do not fit (the last ones stay)."""
        if len(data) > STATS.size - NUMBER.size:
            return False
        with self.locked():
            self.write(self.stats, worker, len(data), data)
        return True

    def worker_stats(self, worker: int) -> bytes:
        """What ``worker`` last published (empty if nothing)."""
        with self.locked():
            length, data = self.read(self.stats, worker)
        return bytes(data[:length])

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)


def encode_text(text: str, size: int) -> bytes:
    """``text`` as a fixed field, cut at ``size`` bytes."""
    return text.encode("utf-8", "replace")[:size]


def decode_text(field: bytes) -> str:
    return field.rstrip(b"\0").decode("utf-8", "replace")
