"""The users file: one ``name:scrypt$n$r$p$salt$hash`` line per user, never a plain password.

Hashes come from :func:`hashlib.scrypt` with a random 16-byte salt; checks
use :func:`hmac.compare_digest`.  Lines starting with ``#`` are comments.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re

import attrs

from ..errors import OptionError

_N, _R, _P = 2**14, 8, 1
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


@attrs.frozen
class UserEntry:
    name: str
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    def line(self) -> str:
        return f"{self.name}:scrypt${self.n}${self.r}${self.p}${self.salt.hex()}${self.digest.hex()}"

    def check(self, password: str) -> bool:
        candidate = hashlib.scrypt(
            password.encode("utf-8", "surrogateescape"),
            salt=self.salt,
            n=self.n,
            r=self.r,
            p=self.p,
            maxmem=256 * 1024 * 1024,
            dklen=len(self.digest),
        )
        return hmac.compare_digest(candidate, self.digest)


def make_entry(name: str, password: str) -> UserEntry:
    check_name(name)
    if not password:
        raise OptionError("the password is empty; choose a non-empty password")
    salt = os.urandom(16)
    digest = hashlib.scrypt(
        password.encode("utf-8", "surrogateescape"), salt=salt, n=_N, r=_R, p=_P, dklen=32
    )
    return UserEntry(name, _N, _R, _P, salt, digest)


def check_name(name: str) -> None:
    if not _NAME.match(name) or name in ("anonymous", "ftp"):
        raise OptionError(
            f"user name {name!r} is not allowed",
            hint="use 1-64 letters, digits, '_', '.', '@' or '-'; 'anonymous' and 'ftp' are reserved",
        )


def parse_line(line: str, where: str) -> UserEntry:
    name, sep, spec = line.partition(":")
    fields = spec.split("$")
    if not sep or len(fields) != 6 or fields[0] != "scrypt":
        raise OptionError(
            f"{where}: not a 'name:scrypt$n$r$p$salt$hash' line",
            hint="create entries with 'transfercore serve --add-user NAME --users FILE'",
        )
    try:
        n, r, p = int(fields[1]), int(fields[2]), int(fields[3])
        salt, digest = bytes.fromhex(fields[4]), bytes.fromhex(fields[5])
    except ValueError:
        raise OptionError(f"{where}: malformed numbers or hex in the hash") from None
    if n < 2 or n > 2**20 or n & (n - 1) or not (1 <= r <= 32) or not (1 <= p <= 16) or len(digest) < 16:
        raise OptionError(f"{where}: scrypt parameters out of range")
    check_name(name)
    return UserEntry(name, n, r, p, salt, digest)


class UserDB:
    def __init__(self, entries: dict[str, UserEntry]) -> None:
        self._entries = entries

    @classmethod
    def load(cls, path: str) -> UserDB:
        entries: dict[str, UserEntry] = {}
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return cls({})
        for number, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            entry = parse_line(line, f"{path}:{number}")
            entries[entry.name] = entry
        return cls(entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def check(self, name: str, password: str) -> bool:
        entry = self._entries.get(name)
        if entry is None:
            # Spend the same time as a real check so timing does not reveal which names exist.
            make_entry("timing", password or "x")
            return False
        return entry.check(password)


def add_user(path: str, name: str, password: str) -> None:
    """Add or replace ``name`` in the users file, written atomically with mode 0600."""
    db = UserDB.load(path)
    entry = make_entry(name, password)
    entries = dict(db._entries)
    entries[name] = entry
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("# transfercore GridFTP users: name:scrypt$n$r$p$salt$hash\n")
        for e in entries.values():
            f.write(e.line() + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
