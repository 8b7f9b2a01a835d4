"""What identifies the source of a transfer: a partial transfer resumes only
from the object it was read from, as it was then."""

from __future__ import annotations

import attrs


@attrs.frozen
class SourceIdentity:
    """What identifies the source object a partial transfer was read from."""

    size: int
    mtime_ns: int
    #: The driver's opaque identity (e.g. ``dev:ino``); empty when it has none.
    identity: str = ""
    #: A hash of a few sampled blocks, to catch in-place rewrites.
    fingerprint: str = ""
    #: The driver's content version (``ObjectInfo.version``; POSIX: the change time), empty when none.
    version: str = ""

    def differences(self, other: SourceIdentity) -> list[str]:
        """Human descriptions of what differs between ``self`` (recorded) and ``other`` (now)."""
        out = []
        if self.size != other.size:
            out.append(f"size {self.size} -> {other.size}")
        if self.mtime_ns != other.mtime_ns:
            out.append("modification time changed")
        if self.identity and other.identity and self.identity != other.identity:
            out.append("the object was replaced")
        if self.fingerprint != other.fingerprint:
            out.append("content changed")
        elif self.version and other.version and self.version != other.version:
            # Size, mtime and the samples agree, yet the storage says the object was
            # written to since (an in-place rewrite that put its mtime back).
            out.append("it was written to since (its change time moved)")
        return out
