"""The durable resume record kept beside a partial file.

The record holds the object's final size, the marker ranges, and the
identity of the partial file (device, inode and the random token in its
name).  It is what a resume trusts, never the partial file's size: holes left
by parallel writes make the size lie.

The record is JSON with a SHA-256 of its own content, so a torn or edited
record is refused instead of believed.  It is replaced atomically: written
to a temporary name, fsynced, renamed over the old record, and the directory
fsynced, so a crash leaves either the old record or the new one.
"""

from __future__ import annotations

import os
from typing import TypeGuard

import attrs

from transfercore.driverkit import TOKEN_HEX, fsync_dir
from transfercore.errors import from_oserror
from transfercore.ranges import RangeSet

from . import names
from .fsutil import remove_quietly

FORMAT = "transfercore-posix-sidecar"
VERSION = 1


class CorruptSidecar(ValueError):
    """The record exists but cannot be trusted; the message says why."""


@attrs.frozen
class SidecarRecord:
    size: int
    ranges: RangeSet
    dev: int
    ino: int
    token: str

    def with_ranges(self, ranges: RangeSet) -> SidecarRecord:
        return attrs.evolve(self, ranges=ranges)


def _body(record: SidecarRecord) -> dict[str, object]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "size": record.size,
        "ranges": str(record.ranges),
        "dev": record.dev,
        "ino": record.ino,
        "token": record.token,
    }


def encode(record: SidecarRecord) -> bytes:
    from . import sealed  # json and hashlib, for sessions that store records only

    return sealed.seal(_body(record))


def _count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def decode(data: bytes) -> SidecarRecord:
    from . import sealed

    try:
        doc = sealed.unseal(data, FORMAT, VERSION)
    except sealed.Unsealed as exc:
        raise CorruptSidecar(f"the resume record {exc}") from None
    try:
        size, dev, ino, token = doc["size"], doc["dev"], doc["ino"], doc["token"]
        if not (_count(size) and _count(dev) and _count(ino)):
            raise CorruptSidecar("the resume record has a bad size or file identity")
        if not isinstance(token, str) or len(token) != TOKEN_HEX:
            raise CorruptSidecar("the resume record has a bad token")
        text = doc["ranges"]
        if not isinstance(text, str):
            raise CorruptSidecar("the resume record has bad ranges (not a range list)")
        ranges = RangeSet.parse(text) if text else RangeSet()
    except KeyError as exc:
        raise CorruptSidecar(f"the resume record lacks {exc.args[0]!r}") from None
    except ValueError as exc:  # RangeSyntaxError included
        raise CorruptSidecar(f"the resume record has bad ranges ({exc})") from None
    if ranges.end() > size:
        raise CorruptSidecar(f"the resume record's ranges {ranges} go past its size {size}")
    return SidecarRecord(size=size, ranges=ranges, dev=dev, ino=ino, token=token)


def store(directory: str, name: str, record: SidecarRecord) -> None:
    """Replace the record of ``name`` in ``directory`` durably and atomically."""
    final = os.path.join(directory, names.sidecar_name(name))
    temp = os.path.join(directory, names.sidecar_temp_name(name))
    data = encode(record)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, final)
    except OSError as exc:
        try:
            remove_quietly(temp)
        except OSError:
            pass  # the original failure is the one to report
        raise from_oserror(exc, f"cannot write the resume record {final}") from exc
    fsync_dir(directory)


def load(directory: str, name: str) -> SidecarRecord | None:
    """The record of ``name``, ``None`` when there is none; :class:`CorruptSidecar` when unreadable."""
    from . import sealed

    path = os.path.join(directory, names.sidecar_name(name))
    try:
        data = sealed.read(path, "the resume record")
    except sealed.Unsealed as exc:
        raise CorruptSidecar(f"the resume record {exc}") from None
    if data is None:
        return None
    return decode(data)


def remove(directory: str, name: str) -> bool:
    """Remove the record of ``name`` (not synced: callers sync the directory once)."""
    return remove_quietly(os.path.join(directory, names.sidecar_name(name)))
