"""Connection limits one client cannot exhaust, sans I/O (the caller passes the clock).

The rules, and why:

* Connections that have not logged in are counted apart from sessions: a
  crowd of them never holds a session slot.  When their pool (in all, or for
  one address) is full, the *oldest* of them is dropped to admit the newcomer,
  so a flood of silent or slow connections cannot keep a real client out, and
  any one of them has only ``login_timeout`` seconds to authenticate.
* Logged-in sessions are limited in all and per address.  When a new login
  finds them full (in all, or for its address), the sessions idle longest
  (no transfer, no command for ``idle_eviction`` seconds) are closed to make
  room, so idle logins cannot lock everyone else out until their idle timeout.
* Failed logins are slowed per address, not per connection: after each
  failure the address must wait longer (doubling, capped) before its next
  password is checked, whatever number of connections it spreads them over.
* The idle timer restarts on complete commands only (see :class:`IdleClock`),
  so a line trickled a byte at a time does not keep a connection alive.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict

import attrs


@attrs.frozen
class Limits:
    max_sessions: int = 64
    max_sessions_per_address: int = 32
    max_unauthenticated: int = 256
    max_unauthenticated_per_address: int = 64
    login_timeout: float = 30.0
    idle_timeout: float = 900.0
    #: a logged-in session idle this long may be closed to admit a new login when the sessions are full
    idle_eviction: float = 60.0
    #: the first failed login from an address costs this many seconds; each further one twice as many
    failure_delay: float = 0.5
    max_failure_delay: float = 8.0
    #: failures older than this are forgotten
    failure_memory: float = 300.0

    def __attrs_post_init__(self) -> None:
        for field in attrs.fields(Limits):
            if getattr(self, field.name) <= 0:
                raise ValueError(f"limit {field.name} must be positive")


@attrs.define(eq=False)
class Slot:
    """One control connection's place in the limits."""

    id: int
    address: str
    connected_at: float
    logged_in: bool = False
    evicted: bool = False
    #: when its last whole command arrived (for choosing the longest-idle session)
    last_command: float = attrs.field(default=attrs.Factory(lambda self: self.connected_at, takes_self=True))
    #: a transfer is running: never idle
    busy: bool = False


@attrs.define
class _Failures:
    count: int = 0
    last: float = 0.0
    next_allowed: float = 0.0


class Admission:
    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._ids = itertools.count(1)
        self._waiting: OrderedDict[int, Slot] = OrderedDict()  # not logged in, oldest first
        self._sessions: dict[int, Slot] = {}
        self._failures: dict[str, _Failures] = {}

    # -- connections ------------------------------------------------------------------

    def connect(self, address: str, now: float) -> tuple[Slot, list[Slot]]:
        """Admit a new connection; return its slot and the slots evicted to make room."""
        lim = self.limits
        evicted: list[Slot] = []
        same = [s for s in self._waiting.values() if s.address == address]
        if len(same) >= lim.max_unauthenticated_per_address:
            evicted.append(self._evict(same[0]))
        if len(self._waiting) >= lim.max_unauthenticated:
            evicted.append(self._evict(next(iter(self._waiting.values()))))
        slot = Slot(id=next(self._ids), address=address, connected_at=now)
        self._waiting[slot.id] = slot
        return slot, evicted

    def _evict(self, slot: Slot) -> Slot:
        self._waiting.pop(slot.id, None)
        slot.evicted = True
        return slot

    def login(self, slot: Slot) -> str | None:
        """Move a connection that authenticated into the sessions; a refusal message if they are full."""
        if slot.logged_in:
            return None
        lim = self.limits
        if len(self._sessions) >= lim.max_sessions:
            return f"Too many sessions ({lim.max_sessions}); try again later."
        if sum(1 for s in self._sessions.values() if s.address == slot.address) >= lim.max_sessions_per_address:
            return f"Too many sessions from {slot.address} ({lim.max_sessions_per_address}); try again later."
        self._waiting.pop(slot.id, None)
        slot.logged_in = True
        self._sessions[slot.id] = slot
        return None

    def make_room(self, slot: Slot, now: float) -> list[Slot]:
        """Close the longest-idle sessions that keep the login of ``slot`` out; the slots to close.

        Only sessions with no transfer and no command for ``idle_eviction``
        seconds are taken; when the address's own share is full, only its own.
        """
        if slot.logged_in:
            return []
        lim = self.limits
        idle = sorted(
            (s for s in self._sessions.values() if not s.busy and now - s.last_command >= lim.idle_eviction),
            key=lambda s: s.last_command,
        )
        evicted: list[Slot] = []
        same = [s for s in self._sessions.values() if s.address == slot.address]
        if len(same) >= lim.max_sessions_per_address:
            own = [s for s in idle if s.address == slot.address]
            if not own:
                return []
            evicted.append(own[0])
        elif len(self._sessions) >= lim.max_sessions and idle:
            evicted.append(idle[0])
        for s in evicted:
            self._sessions.pop(s.id, None)
            s.evicted = True
        return evicted

    def release(self, slot: Slot) -> None:
        self._waiting.pop(slot.id, None)
        self._sessions.pop(slot.id, None)

    def touch(self, slot: Slot, now: float) -> None:
        """A whole command arrived on ``slot`` (it is not idle)."""
        slot.last_command = now

    def set_busy(self, slot: Slot, busy: bool) -> None:
        """A transfer started (``True``) or ended on ``slot``."""
        slot.busy = busy

    def take_evicted(self) -> list[Slot]:
        """Slots of this process that another one evicted since the last call (none here)."""
        return []

    def login_deadline(self, slot: Slot) -> float | None:
        return None if slot.logged_in else slot.connected_at + self.limits.login_timeout

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    @property
    def unauthenticated(self) -> int:
        return len(self._waiting)

    # -- failed logins -------------------------------------------------------------------

    def check_wait(self, address: str, now: float) -> float:
        """Seconds the next login check from ``address`` must wait; reserves that turn."""
        f = self._failures.get(address)
        if f is None:
            return 0.0
        if now - f.last > self.limits.failure_memory:
            del self._failures[address]
            return 0.0
        start = max(now, f.next_allowed)
        # one check at a time per address: the next one queues behind this one
        f.next_allowed = start + self._delay(f.count)
        return start - now

    def login_failed(self, address: str, now: float) -> None:
        f = self._failures.setdefault(address, _Failures())
        if now - f.last > self.limits.failure_memory:
            f.count = 0
        f.count += 1
        f.last = now
        f.next_allowed = max(f.next_allowed, now + self._delay(f.count))
        if len(self._failures) > 100_000:  # bound the memory an address sweep can take
            oldest = min(self._failures, key=lambda a: self._failures[a].last)
            del self._failures[oldest]

    def login_succeeded(self, address: str) -> None:
        self._failures.pop(address, None)

    def _delay(self, count: int) -> float:
        lim = self.limits
        if count <= 0:
            return 0.0
        return float(min(lim.max_failure_delay, lim.failure_delay * 2 ** (count - 1)))


class IdleClock:
    """When a connection must be closed: the login deadline, or idle time since the last whole command."""

    def __init__(self, now: float, idle_timeout: float, login_deadline: float | None) -> None:
        self.idle_timeout = idle_timeout
        self.last_command = now
        self.login_deadline = login_deadline

    def command(self, now: float) -> None:
        self.last_command = now

    def logged_in(self) -> None:
        self.login_deadline = None

    def deadline(self) -> float:
        idle = self.last_command + self.idle_timeout
        return idle if self.login_deadline is None else min(idle, self.login_deadline)

    def expired_reason(self, now: float) -> str | None:
        if self.login_deadline is not None and now >= self.login_deadline:
            return "Login timeout: no successful login in time; closing."
        if now >= self.last_command + self.idle_timeout:
            return "Idle timeout; closing the session."
        return None
