"""The grid-mapfile: which certificate subjects map to which local accounts.

The syntax is the one Globus reads (``globus_gss_assist`` gridmap): one entry a
line, ``"<DN>" user[,user...]``; ``#`` starts a comment line; inside the quoted
DN a backslash escapes the next character and ``\\xHH`` is a byte in hex; an
unquoted DN ends at the first blank.  The first account listed is the default
one.  A DN may appear on several lines; their accounts add up, in order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import attrs

from .errors import GSIConfigError, NotAuthorized

_BLANKS = " \t\r\n"


@attrs.frozen
class GridMap:
    """Subjects (Globus one-line DNs) and the local accounts each may use."""

    entries: Mapping[str, tuple[str, ...]]
    source: str = "grid-mapfile"

    @classmethod
    def parse(cls, text: str, *, source: str = "grid-mapfile") -> GridMap:
        entries: dict[str, tuple[str, ...]] = {}
        for number, line in enumerate(text.splitlines(), 1):
            parsed = _parse_line(line, source=source, number=number)
            if parsed is not None:
                dn, users = parsed
                known = entries.get(dn, ())
                entries[dn] = known + tuple(u for u in users if u not in known)
        return cls(entries=entries, source=source)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> GridMap:
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
        except OSError as exc:
            raise GSIConfigError(
                f"cannot read the grid-mapfile {os.fspath(path)}: {exc.strerror}",
                hint="pass --gridmap FILE or set GRIDMAP",
            ) from exc
        return cls.parse(text, source=os.fspath(path))

    def accounts(self, dn: str) -> tuple[str, ...]:
        return self.entries.get(dn, ())

    def map(self, dn: str, requested: str | None = None) -> str:
        """The local account for ``dn``: ``requested`` if the file allows it, else the default one.

        A ``USER`` name of ``:globus-mapping:`` or ``anonymous`` (what Globus clients send
        when the user gave none) asks for the default.
        """
        accounts = self.accounts(dn)
        if not accounts:
            raise NotAuthorized(
                f"the subject {dn} has no entry in {self.source}",
                hint="the server's administrator can add it (grid-mapfile-add-entry)",
            )
        if requested in (None, "", ":globus-mapping:", "anonymous", "ftp"):
            return accounts[0]
        if requested in accounts:
            return requested
        raise NotAuthorized(
            f"the subject {dn} may not log in as {requested!r} (allowed: {', '.join(accounts)})",
            hint="log in without a user name to get the default account",
        )


def _parse_line(line: str, *, source: str, number: int) -> tuple[str, tuple[str, ...]] | None:
    rest = line.lstrip(_BLANKS)
    if not rest or rest.startswith("#"):
        return None
    if rest.startswith('"'):
        dn_chars: list[str] = []
        i = 1
        while True:
            if i >= len(rest):
                raise GSIConfigError(f"{source}:{number}: the quoted subject has no closing quote")
            c = rest[i]
            if c == "\\" and i + 1 < len(rest):
                nxt = rest[i + 1]
                if nxt == "x" and _is_hex(rest[i + 2 : i + 4]):
                    dn_chars.append(chr(int(rest[i + 2 : i + 4], 16)))
                    i += 4
                else:
                    dn_chars.append(nxt)
                    i += 2
                continue
            if c == '"':
                i += 1
                break
            dn_chars.append(c)
            i += 1
        dn = "".join(dn_chars)
        rest = rest[i:]
    else:
        end = next((k for k, c in enumerate(rest) if c in _BLANKS), len(rest))
        dn, rest = rest[:end], rest[end:]
    users = tuple(u for u in (p.strip(_BLANKS) for p in rest.split(",")) if u)
    if not dn or not users:
        raise GSIConfigError(f"{source}:{number}: an entry needs a subject and at least one account")
    return dn, users


def _is_hex(text: str) -> bool:
    return len(text) == 2 and all(c in "0123456789abcdefABCDEF" for c in text)
