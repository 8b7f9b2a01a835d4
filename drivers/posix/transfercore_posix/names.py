"""Names of the hidden files that hold an unfinished write.

For an object ``dir/name`` the driver keeps, in ``dir``:

* the partial data file ``.<name>.<token>.tcpart``, where ``token`` is 16
  random hex digits chosen when the partial file is created;
* the resume record (sidecar) ``.<name>.tcpart.marker``, which names the token.

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


def partial_name(name: str, token: str) -> str:
    return f".{_stem(name)}.{token}{PARTIAL_SUFFIX}"


def sidecar_name(name: str) -> str:
    return f".{_stem(name)}{SIDECAR_SUFFIX}"


def sidecar_temp_name(name: str) -> str:
    return f".{_stem(name)}{SIDECAR_SUFFIX}{_TEMP_MARK}{secrets.token_hex(4)}"


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
                      rf"|\.{stem}{re.escape(SIDECAR_SUFFIX + _TEMP_MARK)}[0-9a-f]{{8}}")


def is_hidden(name: str) -> bool:
    """Whether a directory entry is the driver's own bookkeeping, not an object."""
    if not name.startswith("."):
        return False
    return (
        name.endswith(PARTIAL_SUFFIX)
        or name.endswith(SIDECAR_SUFFIX)
        or (SIDECAR_SUFFIX + _TEMP_MARK) in name
    )


_LEFTOVER = re.compile(
    rf"\.(?P<stem>.+?)(?:\.[0-9a-f]{{{TOKEN_HEX}}}{re.escape(PARTIAL_SUFFIX)}"
    rf"|{re.escape(SIDECAR_SUFFIX)}(?:{re.escape(_TEMP_MARK)}[0-9a-f]{{8}})?)"
)


def leftover_stem(entry: str) -> str | None:
    """The stem (see :func:`stem`) of the object a hidden entry belongs to,
    or ``None`` for anything else."""
    found = _LEFTOVER.fullmatch(entry)
    return found.group("stem") if found else None


def stem(name: str) -> str:
    """The part of the hidden names that stands for ``name``."""
    return _stem(name)
