"""Client paths (as the server hands them to the DSI) to driver paths under the URL's path."""

from __future__ import annotations

import functools
import posixpath

from transfercore.errors import PathEscapesRoot


@functools.lru_cache(maxsize=8)
def _root(base: str) -> str:
    return posixpath.normpath(base or "/")


def driver_path(base: str, client_path: str) -> str:
    """``client_path`` (absolute, as the server normalized it) below ``base``.

    The server already resolves ``..``; this check keeps the promise even if a
    path arrives that would climb above the client's ``/``.
    """
    if "\x00" in client_path:
        raise PathEscapesRoot(f"path {client_path!r} contains a NUL byte")
    root = _root(base)
    if client_path[:1] == "/" and client_path[-1:] != "/" and "//" not in client_path and "/." not in client_path:
        # Already normal (no empty, '.' or '..' part): every path of a tree's uploads is, and
        # this is once per file for the server's stat and once for the STOR.
        return client_path if root == "/" else root + client_path
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
    if not parts:
        return root
    return posixpath.join(root, *parts)
