"""The hidden name an unfinished object lives under, beside its final name.

One rule for every driver and front end: ``.<name>.tcpart`` in the same
directory (drivers may add a token before the suffix), where a name longer
than :data:`VERBATIM_MAX` bytes is replaced by a digest, so the hidden name
stays within ``NAME_MAX`` (255 bytes) whatever the object's name.
"""

from __future__ import annotations

import hashlib

PARTIAL_SUFFIX = ".tcpart"
#: Longest object name (bytes) used verbatim in hidden names; longer ones are hashed.
VERBATIM_MAX = 200


def stem(name: str) -> str:
    """The part of the hidden names that stands for the object ``name``."""
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= VERBATIM_MAX:
        return name
    return "tc-" + hashlib.sha256(raw).hexdigest()[:32]


def partial_path(path: str) -> str:
    """Where the unfinished write of ``path`` lives, in the same directory."""
    head, _, name = path.rstrip("/").rpartition("/")
    return f"{head}/.{stem(name)}{PARTIAL_SUFFIX}"


def is_partial_name(name: str) -> bool:
    """Whether a directory entry is an unfinished write (``.<stem>.tcpart``), not a user object."""
    return name.startswith(".") and name.endswith(PARTIAL_SUFFIX) and len(name) > len(PARTIAL_SUFFIX) + 1


__all__ = ["PARTIAL_SUFFIX", "VERBATIM_MAX", "is_partial_name", "partial_path", "stem"]
