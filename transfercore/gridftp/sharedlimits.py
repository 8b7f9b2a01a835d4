"""The connection limits of :mod:`.limits`, held for all the workers of one server.

:class:`SharedAdmission` keeps no rules of its own: each decision loads the
shared records into the structures :class:`~.limits.Admission` decides on,
lets it decide, and writes back what changed, all under the region's lock.
A worker's own slots are its live :class:`~.limits.Slot` objects, so a
decision about them reaches the connection that holds them.  A slot another
worker evicted is marked in its record; the owner finds it with
:meth:`SharedAdmission.take_evicted` (polled) and closes the connection.
"""

from __future__ import annotations

import contextlib
import itertools
import struct
from collections import OrderedDict
from collections.abc import Iterator

from .limits import Admission, Limits, Slot, _Failures
from .sharedstate import (
    EVICTED_SESSION,
    EVICTED_WAITING,
    FREE,
    SESSION,
    SLOT,
    WAITING,
    SharedRegion,
    decode_text,
    encode_text,
)

#: session numbers each worker of one index has before the next one's begin
GENERATION_IDS = 1_000_000
_STATE_FIELD = 12  # offset of the state byte in a SLOT record
_BUSY_FIELD = 13
_LAST_COMMAND_FIELD = 24
_DOUBLE = struct.Struct("<d")


class SharedAdmission(Admission):
    def __init__(
        self, limits: Limits | None, region: SharedRegion, worker: int, workers: int, generation: int = 0
    ) -> None:
        super().__init__(limits)
        self.region = region
        self.worker = worker
        self.workers = workers
        # ids unique across the workers (a worker's own are those equal to its index + 1, modulo N)
        # and across the workers that replace a dead one (a million each)
        self._ids = itertools.count(worker + 1 + workers * GENERATION_IDS * generation, workers)
        #: this worker's live slots and their record indexes
        self._mine: dict[int, tuple[Slot, int]] = {}
        self._loaded: dict[int, tuple[Slot, int, int]] = {}
        self._free: list[int] = []

    def _own(self, slot: Slot) -> bool:
        return (slot.id - 1) % self.workers == self.worker

    # -- the shared records around each decision ---------------------------------------

    @contextlib.contextmanager
    def _shared(self) -> Iterator[None]:
        with self.region.locked():
            self._load()
            try:
                yield
            finally:
                self._store()

    def _load(self) -> None:
        waiting: list[Slot] = []
        sessions: list[Slot] = []
        self._loaded = {}
        self._free = []
        for index, (sid, worker, state, busy, connected, last, address) in self.region.records(self.region.slots):
            if state == FREE:
                self._free.append(index)
                continue
            if state not in (WAITING, SESSION):
                continue
            mine = self._mine.get(sid) if worker == self.worker else None
            slot = mine[0] if mine is not None else Slot(
                id=sid, address=decode_text(address), connected_at=connected,
                logged_in=state == SESSION, last_command=last, busy=bool(busy),
            )
            self._loaded[sid] = (slot, index, worker)
            (sessions if state == SESSION else waiting).append(slot)
        waiting.sort(key=lambda s: (s.connected_at, s.id))
        self._waiting = OrderedDict((s.id, s) for s in waiting)
        self._sessions = {s.id: s for s in sessions}

    def _store(self) -> None:
        region, table = self.region, self.region.slots
        for sid, (slot, index, worker) in self._loaded.items():
            if sid in self._waiting or sid in self._sessions:
                state = WAITING if sid in self._waiting else SESSION
            elif slot.evicted and not self._own(slot):
                # left for its worker to close (it is no longer counted)
                state = EVICTED_SESSION if slot.logged_in else EVICTED_WAITING
                region.set_evictions(worker, region.evictions(worker) + 1)
            else:
                region.clear(table, index)
                self._mine.pop(sid, None)
                continue
            # only the state: the owner writes busy and last_command without the lock
            region.map[table.at(index) + _STATE_FIELD] = state
        free = iter(self._free)
        for slot in (*self._waiting.values(), *self._sessions.values()):
            if slot.id in self._loaded:
                continue
            spare = region.spare(table, next(free, None))
            if spare is None:
                continue  # the table is full (limits are checked against its size at start): not counted
            region.write(table, spare, slot.id, self.worker, SESSION if slot.logged_in else WAITING,
                         int(slot.busy), slot.connected_at, slot.last_command, encode_text(slot.address, 64))
            self._mine[slot.id] = (slot, spare)
        self._waiting = OrderedDict()
        self._sessions = {}
        self._loaded = {}

    # -- decisions ------------------------------------------------------------------------

    def connect(self, address: str, now: float) -> tuple[Slot, list[Slot]]:
        with self._shared():
            slot, evicted = super().connect(address, now)
        return slot, [s for s in evicted if self._own(s)]

    def login(self, slot: Slot) -> str | None:
        with self._shared():
            return super().login(slot)

    def make_room(self, slot: Slot, now: float) -> list[Slot]:
        with self._shared():
            evicted = super().make_room(slot, now)
        return [s for s in evicted if self._own(s)]

    def release(self, slot: Slot) -> None:
        with self._shared():
            super().release(slot)

    def touch(self, slot: Slot, now: float) -> None:
        slot.last_command = now
        mine = self._mine.get(slot.id)
        if mine is not None:
            _DOUBLE.pack_into(self.region.map, self.region.slots.at(mine[1]) + _LAST_COMMAND_FIELD, now)

    def set_busy(self, slot: Slot, busy: bool) -> None:
        slot.busy = busy
        mine = self._mine.get(slot.id)
        if mine is not None:
            self.region.map[self.region.slots.at(mine[1]) + _BUSY_FIELD] = int(busy)

    def take_evicted(self) -> list[Slot]:
        taken: list[Slot] = []
        if not self.region.evictions(self.worker):
            return taken
        with self.region.locked():
            self.region.set_evictions(self.worker, 0)
            for index, rec in self.region.records(self.region.slots):
                if rec[1] == self.worker and rec[2] in (EVICTED_WAITING, EVICTED_SESSION):
                    self.region.clear(self.region.slots, index)
                    mine = self._mine.pop(rec[0], None)
                    if mine is not None:
                        mine[0].evicted = True
                        taken.append(mine[0])
        return taken

    @property
    def sessions(self) -> int:
        return self._count(SESSION)

    @property
    def unauthenticated(self) -> int:
        return self._count(WAITING)

    def _count(self, state: int) -> int:
        with self.region.locked():
            return sum(1 for _, rec in self.region.records(self.region.slots) if rec[2] == state)

    # -- failed logins: one record per address ---------------------------------------------

    @contextlib.contextmanager
    def _failure(self, address: str) -> Iterator[None]:
        region, table = self.region, self.region.failures
        key = encode_text(address, 64)
        with region.locked():
            found: int | None = None
            free: int | None = None
            oldest: tuple[float, int] | None = None
            for index, (count, last, next_allowed, field) in region.records(table):
                name = field.rstrip(b"\0")
                if name == key:
                    found = index
                    self._failures = {address: _Failures(count, last, next_allowed)}
                    break
                if not name:
                    free = index if free is None else free
                elif oldest is None or last < oldest[0]:
                    oldest = (last, index)
            else:
                self._failures = {}
            try:
                yield
            finally:
                f = self._failures.get(address)
                if f is None:
                    if found is not None:
                        region.clear(table, found)
                else:
                    # a full table forgets the address failed longest ago
                    spare = found if found is not None else region.spare(table, free)
                    index = spare if spare is not None else (oldest or (0, 0))[1]
                    region.write(table, index, f.count, f.last, f.next_allowed, key)
                self._failures = {}

    def check_wait(self, address: str, now: float) -> float:
        with self._failure(address):
            return super().check_wait(address, now)

    def login_failed(self, address: str, now: float) -> None:
        with self._failure(address):
            super().login_failed(address, now)

    def login_succeeded(self, address: str) -> None:
        with self._failure(address):
            super().login_succeeded(address)


assert SLOT.size == 96
