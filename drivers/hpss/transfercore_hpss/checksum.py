"""Whole-file checksums kept in HPSS user attributes, as ``hpsssum`` does:
``/hpss/user/cksum/{algorithm,checksum,state,lastupdate,filesize,app}``.
Every write marks the stored value Invalid first; a value is stored only
after reading the file back."""

from __future__ import annotations

import time

from . import api

PREFIX = "/hpss/user/cksum/"
KEYS = ("algorithm", "checksum", "state", "lastupdate", "filesize", "app")
APP = "transfercore"


def invalid_values() -> dict[str, str]:
    """The attributes that mark the stored checksum Invalid (for a combined metadata call)."""
    return {PREFIX + "state": "Invalid", PREFIX + "lastupdate": str(int(time.time()))}


def store(path: str, algorithm: str, value: str, size: int) -> None:
    api.set_attrs(
        path,
        {
            PREFIX + "algorithm": algorithm,
            PREFIX + "checksum": value,
            PREFIX + "state": "Valid",
            PREFIX + "lastupdate": str(int(time.time())),
            PREFIX + "filesize": str(size),
            PREFIX + "app": APP,
        },
    )


def stored(path: str, algorithm: str, size: int) -> str | None:
    """The stored checksum when it is Valid, of ``algorithm`` and for this size."""
    values = api.get_attrs(path, [PREFIX + k for k in KEYS])
    if values[PREFIX + "state"] != "Valid" or values[PREFIX + "algorithm"].lower() != algorithm:
        return None
    if values[PREFIX + "filesize"] != str(size) or not values[PREFIX + "checksum"]:
        return None
    return values[PREFIX + "checksum"].lower()


def read_all(path: str) -> dict[str, str]:
    values = api.get_attrs(path, [PREFIX + k for k in KEYS])
    return {k: values[PREFIX + k] for k in KEYS}
