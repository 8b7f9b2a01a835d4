"""Virtual paths: what a client names, normalized and confined to ``/``.

A client path is joined to the working directory and normalized lexically;
``..`` may climb back towards ``/`` but never above it.  Symbolic links are
the storage driver's business (the POSIX driver refuses links leaving its root).
"""

from __future__ import annotations

from ..errors import PathEscapesRoot

MAX_PATH = 4096


def resolve(cwd: str, arg: str) -> str:
    """The absolute, normalized virtual path of ``arg`` seen from ``cwd``."""
    if not arg:
        return cwd
    if len(arg) > MAX_PATH:
        raise PathEscapesRoot(f"path of {len(arg)} characters is longer than {MAX_PATH}")
    if "\x00" in arg or "\r" in arg or "\n" in arg:
        raise PathEscapesRoot("path contains a NUL or line-break character")
    joined = arg if arg.startswith("/") else f"{cwd.rstrip('/')}/{arg}"
    parts: list[str] = []
    for part in joined.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise PathEscapesRoot(
                    f"path {arg!r} climbs above the root", hint="name a path inside the server's root"
                )
            parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def parent(path: str) -> str:
    head = path.rstrip("/").rsplit("/", 1)[0]
    return head or "/"
