"""The resume record of an unfinished write, kept in the file's HPSS
user-defined attributes under ``/hpss/user/transfercore/``.

The record is what makes the driver authoritative on resume: a caller's
marker is accepted only when the record of the same write (same expected
size, same file object) has a durable end that contains it.  The durable end
is raised only after an ``hpss_PIOExecute`` return acknowledged the bytes,
and before the writer reports them, so a marker that reached a journal is
always inside the record.  A fresh write's record is written whole with its
first durable end (a new file object has none to replace); a file published
before that never has one.  The record is removed when the write completes.
"""

from __future__ import annotations

import logging
import time

import attrs

from transfercore.driverkit import new_token

from . import api

log = logging.getLogger(__name__)

PREFIX = "/hpss/user/transfercore/"
_FIELDS = ("size", "durable", "token", "object", "created")
KEYS = tuple(PREFIX + f for f in _FIELDS)


@attrs.frozen
class ResumeRecord:
    #: The size the write will have when complete.
    size: int
    #: End of the prefix that Execute returns acknowledged.
    durable: int
    #: Random name of this write, kept across its resumes: tells one write of
    #: a path from a later one when the attributes are read (diagnostics).
    token: str
    #: ``st_ino`` of the file when the write began: a replaced file is not this write's.
    object_id: int
    #: Seconds since the epoch when the write began.
    created: int

    @classmethod
    def start(cls, size: int, object_id: int) -> ResumeRecord:
        return cls(size, 0, new_token(), object_id, int(time.time()))

    def values(self) -> dict[str, str]:
        raw = (self.size, self.durable, self.token, self.object_id, self.created)
        return {k: str(v) for k, v in zip(KEYS, raw, strict=True)}


def load(path: str) -> ResumeRecord | None:
    """The record of ``path``, or ``None`` when there is none (or it is unreadable)."""
    values = api.get_attrs(path, list(KEYS))
    if not any(values.values()):
        return None
    try:
        size, durable, token, object_id, created = (values[k] for k in KEYS)
        record = ResumeRecord(int(size), int(durable), token, int(object_id), int(created))
    except ValueError:
        log.warning("ignoring the malformed resume record of %s: %s", path, values)
        return None
    if not 0 <= record.durable <= record.size:
        log.warning(
            "ignoring the resume record of %s: durable %d outside its size %d",
            path,
            record.durable,
            record.size,
        )
        return None
    return record


def save(path: str, record: ResumeRecord, extra: dict[str, str] | None = None) -> None:
    """Write the whole record (and ``extra`` attributes) in one metadata call."""
    api.set_attrs(path, record.values() | (extra or {}))


def set_durable(path: str, end: int) -> None:
    """Raise (or, on a resume that starts lower, set) the durable end: one metadata call."""
    api.set_attrs(path, {PREFIX + "durable": str(end)})


def remove(path: str) -> None:
    api.delete_attrs(path, list(KEYS))
