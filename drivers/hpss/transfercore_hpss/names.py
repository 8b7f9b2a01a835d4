"""The hidden name an unfinished HPSS write lives under until it is published.

For an object ``dir/name`` the writer writes ``dir/.<name>.tcpart`` and
renames it to ``dir/name`` once every byte is acknowledged, so a partial or
refused object never shows under its final name.  The resume record lives in
the partial file's own user-defined attributes (:mod:`.record`), which the
rename carries along; the record's object id tells one partial file from a
later one under the same name, so no random token is needed in the name.
The rule is the core's (:mod:`transfercore.partialnames`): ``.`` first,
``.tcpart`` last, and a digest instead of a very long name.
"""

from __future__ import annotations

from transfercore.partialnames import PARTIAL_SUFFIX, is_partial_name, partial_path


def is_hidden(name: str) -> bool:
    """Whether a directory entry is an unfinished write, not a user object."""
    return is_partial_name(name)


__all__ = ["PARTIAL_SUFFIX", "is_hidden", "partial_path"]
