"""Map URL paths to local paths, optionally confined to a root directory.

Without a root a URL path is the local absolute path.  With a root (servers
exposing one tree) the URL path is relative to it, and no path may leave it:
a ``..`` component is refused outright, and a symlink whose target resolves
outside the root is refused wherever it appears on the path.

The check resolves symlinks at the time of the call, from the root down: the
root itself was resolved once, when the mapper was made, so its ancestors
are not looked at again for every path (that was half the ``lstat`` calls of
a small upload under a root a few levels deep).  It guards against
paths chosen by a remote client, not against a local user who can swap a
directory for a symlink between the check and the use (that user can already
write in the root).
"""

from __future__ import annotations

import os
import stat

import attrs

from transfercore.errors import LocationError, PathEscapesRoot


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (OSError, ValueError):
        return None


def _check_text(path: object) -> None:
    if not isinstance(path, str) or not path:
        raise LocationError(f"path {path!r} is empty; give an absolute path")
    if "\x00" in path:
        raise LocationError(f"path {path!r} contains a NUL byte")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


@attrs.frozen
class PathMapper:
    """Turns URL paths into local paths; ``root=None`` means no confinement."""

    root: str | None = None

    @classmethod
    def create(cls, root: str | None) -> PathMapper:
        if root is None:
            return cls(None)
        if not root or not os.path.isabs(root):
            raise LocationError(f"root {root!r} must be an absolute directory path")
        real = os.path.realpath(root)
        if not os.path.isdir(real):
            raise LocationError(
                f"root {root!r} is not an existing directory; create it first or fix the root= option"
            )
        return cls(real)

    def local(self, path: str) -> str:
        """The local path for URL path ``path``; :class:`PathEscapesRoot` if it leaves the root.

        Symlinks inside the root are followed for the parent directories; the
        last component is kept as a name (so ``remove`` removes a link, not its
        target) after checking that its target, if it is a link, stays inside.
        """
        if self.root is None:
            return self._unconfined(path)
        return self._confined(path)[0]

    def located(self, path: str) -> tuple[str, os.stat_result | None]:
        """:meth:`local`, with what ``lstat`` found at the last component (``None``: nothing there).

        Confined, that ``lstat`` is part of the check, so a caller that needs
        to know what is at the path asks for nothing more.
        """
        if self.root is None:
            local = self._unconfined(path)
            return local, _lstat(local)
        local, st = self._confined(path)
        return local, st if local != self.root else _lstat(local)

    def _confined(self, path: str) -> tuple[str, os.stat_result | None]:
        """The local path below the root, and the last component's ``lstat`` (``None`` for the root itself)."""
        assert self.root is not None
        _check_text(path)
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise PathEscapesRoot(
                f"path {path!r} contains '..', which is not allowed under the confined root",
                hint="give the path without '..' components",
            )
        if not parts:
            return self.root, None
        parent = self._resolve(parts[:-1])
        if not _inside(parent, self.root):
            raise self._escape(path)
        local = os.path.join(parent, parts[-1])
        st = _lstat(local)
        if st is not None and stat.S_ISLNK(st.st_mode) and not _inside(os.path.realpath(local), self.root):
            raise self._escape(path)
        return local, st

    @staticmethod
    def _unconfined(path: str) -> str:
        _check_text(path)
        if not os.path.isabs(path):
            raise LocationError(f"path {path!r} must be absolute")
        return os.path.normpath(path)

    def _resolve(self, parts: list[str]) -> str:
        """``os.path.realpath`` of root/parts, looking only at the components below the root."""
        assert self.root is not None
        current = self.root
        for i, part in enumerate(parts):
            candidate = os.path.join(current, part)
            try:
                mode = os.lstat(candidate).st_mode
            except OSError:
                # Not there (or not searchable): realpath keeps the rest as written, as here.
                return os.path.join(candidate, *parts[i + 1 :])
            if stat.S_ISLNK(mode):
                return os.path.realpath(os.path.join(candidate, *parts[i + 1 :]))
            current = candidate
        return current

    def url_path(self, local: str) -> str:
        """The URL path of a local path (inverse of :meth:`local` for paths inside the root)."""
        if self.root is None:
            return local
        rel = os.path.relpath(local, self.root)
        return "/" if rel == "." else "/" + rel

    @staticmethod
    def _escape(path: str) -> PathEscapesRoot:
        return PathEscapesRoot(
            f"path {path!r} leaves the confined root through a symbolic link",
            hint="only paths inside the served directory are allowed",
        )
