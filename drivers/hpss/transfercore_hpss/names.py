"""The hidden name an unfinished HPSS write lives under until it is published.

For an object ``dir/name`` the writer writes ``dir/.<name>.tcpart`` and
renames it to ``dir/name`` once every byte is acknowledged, so a partial or
refused object never shows under its final name.  The resume record lives in
the partial file's own user-defined attributes (:mod:`.record`), which the
rename carries along; the record's object id tells one partial file from a
later one under the same name, so no random token is needed in the name.
The names follow the posix driver's: ``.`` first, ``.tcpart`` last, and a
digest instead of a very long name so the hidden name stays a valid one.
"""

from __future__ import annotations

import hashlib

PARTIAL_SUFFIX = ".tcpart"
#: Longest object name (bytes) used verbatim in the hidden name; longer ones are hashed.
_VERBATIM_MAX = 200


def _stem(name: str) -> str:
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= _VERBATIM_MAX:
        return name
    return "tc-" + hashlib.sha256(raw).hexdigest()[:32]


def partial_path(path: str) -> str:
    """Where the unfinished write of ``path`` lives, in the same directory."""
    head, _, name = path.rstrip("/").rpartition("/")
    return f"{head}/.{_stem(name)}{PARTIAL_SUFFIX}"


def is_hidden(name: str) -> bool:
    """Whether a directory entry is an unfinished write, not a user object."""
    return name.startswith(".") and name.endswith(PARTIAL_SUFFIX) and len(name) > len(PARTIAL_SUFFIX) + 1
