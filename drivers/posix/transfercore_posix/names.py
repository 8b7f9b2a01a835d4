"""Names of the hidden files that hold an unfinished write.

For an object ``dir/name`` the driver keeps, in ``dir``:

* the partial data file ``.<name>.<token>.tcpart``, where ``token`` is 16
  random hex digits chosen when the partial file is created;
* the resume record (sidecar) ``.<name>.tcpart.marker``, which names the token.

An object written by several range writers at once (see :mod:`.multiwriter`)
has instead the anchor ``.<name>.tcpart.ranges``, which names the token of
the shared partial file, and one record per writer,
``.<name>.tcpart.ranges.w-<start>-<end>-<writer id>``.

The token in the file name is the part of the partial file's identity that
survives inode reuse: a file recreated by anything else under the same name
with a recycled inode number still cannot carry the random name.  Very long
names are replaced by a digest so the hidden names stay within NAME_MAX.
"""

from __future__ import annotations

import re
import secrets

from transfercore.driverkit import TOKEN_HEX
from transfercore.partialnames import PARTIAL_SUFFIX
from transfercore.partialnames import stem as _stem

SIDECAR_SUFFIX = ".tcpart.marker"
_TEMP_MARK = ".tmp-"
#: The anchor of an object with several range writers; writer records and temporaries extend it.
RANGES_SUFFIX = ".tcpart.ranges"
WRITER_ID = r"[A-Za-z0-9_-]{1,64}"
_RANGES_TAIL = rf"{re.escape(RANGES_SUFFIX)}(?:\.w-[0-9]{{1,20}}-[0-9]{{1,20}}-{WRITER_ID}|{re.escape(_TEMP_MARK)}[0-9a-f]{{8}})?"
_RANGES_ENTRY = re.compile(rf"\..+{_RANGES_TAIL}")


def partial_name(name: str, token: str) -> str:
    return f".{_stem(name)}.{token}{PARTIAL_SUFFIX}"


def sidecar_name(name: str) -> str:
    return f".{_stem(name)}{SIDECAR_SUFFIX}"


def sidecar_temp_name(name: str) -> str:
    return f".{_stem(name)}{SIDECAR_SUFFIX}{_TEMP_MARK}{secrets.token_hex(4)}"


def ranges_anchor_name(name: str) -> str:
    return f".{_stem(name)}{RANGES_SUFFIX}"


def range_record_name(name: str, writer_id: str, start: int, end: int) -> str:
    """The record of one range writer; its range is in the name, so that a
    writer opening one range reads only the records of ranges that overlap it."""
    return f".{_stem(name)}{RANGES_SUFFIX}.w-{start}-{end}-{writer_id}"


def ranges_temp_name(name: str) -> str:
    return f".{_stem(name)}{RANGES_SUFFIX}{_TEMP_MARK}{secrets.token_hex(4)}"


def range_record_prefix(name: str) -> str:
    """What every writer record of ``name`` begins with."""
    return f".{_stem(name)}{RANGES_SUFFIX}.w-"


def partial_pattern(name: str) -> re.Pattern[str]:
    """Matches every partial file of ``name``, whatever its token."""
    return re.compile(rf"\.{re.escape(_stem(name))}\.[0-9a-f]{{{TOKEN_HEX}}}{re.escape(PARTIAL_SUFFIX)}")


def hidden_prefix(name: str) -> str:
    """What every hidden name of ``name`` (partial files, records) begins with."""
    return f".{_stem(name)}."


def leftover_pattern(name: str) -> re.Pattern[str]:
    """Matches every partial file of ``name`` and every temporary record a
    writer that died between writing and renaming it left behind."""
    stem = re.escape(_stem(name))
    return re.compile(rf"\.{stem}\.[0-9a-f]{{{TOKEN_HEX}}}{re.escape(PARTIAL_SUFFIX)}"
                      rf"|\.{stem}{re.escape(SIDECAR_SUFFIX + _TEMP_MARK)}[0-9a-f]{{8}}"
                      rf"|\.{stem}{_RANGES_TAIL}")


def is_hidden(name: str) -> bool:
    """Whether a directory entry is the driver's own bookkeeping, not an object."""
    if not name.startswith("."):
        return False
    return (
        name.endswith(PARTIAL_SUFFIX)
        or name.endswith(SIDECAR_SUFFIX)
        or (SIDECAR_SUFFIX + _TEMP_MARK) in name
        or (RANGES_SUFFIX in name and _RANGES_ENTRY.fullmatch(name) is not None)
    )


_LEFTOVER = re.compile(
    rf"\.(?P<stem>.+?)(?:\.[0-9a-f]{{{TOKEN_HEX}}}{re.escape(PARTIAL_SUFFIX)}"
    rf"|{re.escape(SIDECAR_SUFFIX)}(?:{re.escape(_TEMP_MARK)}[0-9a-f]{{8}})?"
    rf"|{_RANGES_TAIL})"
)


def leftover_stem(entry: str) -> str | None:
    """The stem (see :func:`stem`) of the object a hidden entry belongs to,
    or ``None`` for anything else."""
    found = _LEFTOVER.fullmatch(entry)
    return found.group("stem") if found else None


def stem(name: str) -> str:
    """The part of the hidden names that stands for ``name``."""
    return _stem(name)
