"""When to ask the destination for a durability point (a restart marker).

As GridFTP servers do, a marker is taken every ``interval`` seconds (default
5) and, so that a fast link does not leave gigabytes at risk, every
``bytes`` bytes written (default 256 MiB), whichever comes first; and always
once at the end.  Each marker costs a flush of the storage (``fdatasync`` on
POSIX), so neither limit should be tiny.
"""

from __future__ import annotations

from typing import Any

import attrs

from ..errors import OptionError

DEFAULT_INTERVAL = 5.0
DEFAULT_BYTES = 256 * 1024 * 1024


def _interval(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not value >= 0:
        raise OptionError(f"marker interval {value} must be a number of seconds >= 0 (0 turns it off)")
    return value or None


def _bytes(value: int | None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise OptionError(f"marker bytes {value!r} must be a whole number of bytes >= 0 (0 turns it off)")
    return value or None


@attrs.frozen
class MarkerPolicy:
    """Take a marker after ``interval`` seconds or ``bytes`` bytes since the last one.

    ``None`` (or 0) turns a limit off; with both off, the only marker is the
    final one.
    """

    interval: float | None = attrs.field(default=DEFAULT_INTERVAL, converter=_interval)
    bytes: int | None = attrs.field(default=DEFAULT_BYTES, converter=_bytes)

    @classmethod
    def none(cls) -> MarkerPolicy:
        """Only the final marker."""
        return cls(None, None)

    @property
    def periodic(self) -> bool:
        return self.interval is not None or self.bytes is not None

    def due(self, seconds_since: float, bytes_since: int) -> bool:
        """Whether a marker is due, given the time and bytes since the last one."""
        if bytes_since <= 0:
            # Nothing new to make durable: a flush would only cost time.
            return False
        if self.interval is not None and seconds_since >= self.interval:
            return True
        return self.bytes is not None and bytes_since >= self.bytes

    def seconds_until_due(self, seconds_since: float) -> float | None:
        """How long the time limit still allows (None when it is off)."""
        if self.interval is None:
            return None
        return max(0.0, self.interval - seconds_since)

    def to_dict(self) -> dict[str, Any]:
        return {"interval": self.interval, "bytes": self.bytes}
