"""Client paths (as the server hands them to the DSI) to driver paths under the URL's path."""

from __future__ import annotations

import posixpath

from transfercore.errors import PathEscapesRoot


def driver_path(base: str, client_path: str) -> str:
    """``client_path`` (absolute, as the server normalized it) below ``base``.

    The server already resolves ``..``; this check keeps the promise even if a
    path arrives that would climb above the client's ``/``.
    """
    if "\x00" in client_path:
        raise PathEscapesRoot(f"path {client_path!r} contains a NUL byte")
    parts: list[str] = []
    for part in client_path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise PathEscapesRoot(f"path {client_path!r} climbs above the served directory")
            parts.pop()
            continue
        parts.append(part)
    root = posixpath.normpath(base or "/")
    if not parts:
        return root
    return posixpath.join(root, *parts)
