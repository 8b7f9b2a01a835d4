"""Globus signing policies: which subjects a trusted CA may certify.

A CA directory in the Globus layout holds, beside each ``<hash>.0`` CA
certificate, a ``<hash>.signing_policy`` file in the EACL syntax::

    access_id_CA  X509  '/C=US/O=Example/CN=Example CA'
    pos_rights    globus CA:sign
    cond_subjects globus '"/C=US/O=Example/*" "/C=US/O=Other/*"'

A certificate issued by that CA is accepted only if its subject matches one of
the ``cond_subjects`` patterns (``*`` any run of characters, ``?`` one), so a
CA trusted for one namespace cannot vouch for another's users.
"""

from __future__ import annotations

import re
import shlex

import attrs

from .errors import GSIConfigError


@attrs.frozen
class SigningPolicy:
    """The subject patterns each CA (by its one-line DN) may sign."""

    allowed: dict[str, tuple[str, ...]]

    @classmethod
    def parse(cls, text: str, *, source: str = "signing policy") -> SigningPolicy:
        allowed: dict[str, list[str]] = {}
        ca: str | None = None
        may_sign = False
        try:
            words = shlex.split(_strip_comments(text), posix=True)
        except ValueError as exc:
            raise GSIConfigError(f"{source}: {exc}") from exc
        i = 0
        while i < len(words):
            word = words[i]
            if word == "access_id_CA":
                _need(words, i, source)
                if words[i + 1] != "X509":
                    raise GSIConfigError(f"{source}: access_id_CA type {words[i + 1]!r} is not X509")
                ca, may_sign = words[i + 2], False
                allowed.setdefault(ca, [])
                i += 3
            elif word == "pos_rights":
                _need(words, i, source)
                may_sign = may_sign or (words[i + 1] == "globus" and words[i + 2] == "CA:sign")
                i += 3
            elif word == "cond_subjects":
                _need(words, i, source)
                if ca is None:
                    raise GSIConfigError(f"{source}: cond_subjects without an access_id_CA before it")
                if words[i + 1] != "globus":
                    raise GSIConfigError(f"{source}: cond_subjects type {words[i + 1]!r} is not globus")
                if may_sign:
                    allowed[ca].extend(shlex.split(words[i + 2], posix=True))
                i += 3
            else:
                raise GSIConfigError(f"{source}: unexpected word {word!r}")
        return cls(allowed={k: tuple(v) for k, v in allowed.items()})

    def permits(self, ca: str, subject: str) -> bool:
        """Whether ``ca`` (one-line DN) may sign a certificate for ``subject``."""
        return any(_match(pattern, subject) for pattern in self.allowed.get(ca, ()))


def _need(words: list[str], i: int, source: str) -> None:
    if i + 2 >= len(words):
        raise GSIConfigError(f"{source}: {words[i]} needs two values after it")


def _match(pattern: str, subject: str) -> bool:
    # only * and ? are wildcards in a signing policy; [ is an ordinary character
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, subject, flags=re.DOTALL) is not None


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))

