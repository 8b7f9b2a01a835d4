"""The source namespace as a stream of entries.

:func:`walk` holds one open directory listing per level and the names of the
directories still to visit, never the whole tree: a million-entry tree costs
the memory of its widest directory level, not a million objects.  Symbolic
links are reported as links and never followed, so the walk cannot leave the
tree; devices, FIFOs and sockets go to ``on_skip``.  Names are kept byte for
byte: a name that is not valid UTF-8 carries its bytes as surrogates (as
``os`` gives it), and the journal stores it reversibly.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable, Iterator

from ..contract import Driver, ObjectInfo
from ..errors import LocationError, TransferCoreError
from .model import Entry, Kind

Skip = Callable[[str, str], None]


def join(root: str, rel: str) -> str:
    """The driver path of ``rel`` under ``root``."""
    return root.rstrip("/") + "/" + rel


def to_entry(rel: str, info: ObjectInfo) -> Entry | None:
    if info.special:
        return None
    if info.link is not None:
        return Entry(rel, Kind.LINK, 0, info.mtime_ns, info.mode, info.identity, info.link)
    if info.is_dir:
        return Entry(rel, Kind.DIR, 0, info.mtime_ns, info.mode, info.identity)
    return Entry(rel, Kind.FILE, info.size, info.mtime_ns, info.mode, info.identity)


def is_utf8(name: str) -> bool:
    """Whether a name (as ``os`` gives it, undecodable bytes as surrogates) is valid UTF-8."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def walk(driver: Driver, root: str, on_skip: Skip | None = None, *, hard_links: bool = False) -> Iterator[Entry]:
    """Every entry below ``root`` (not ``root`` itself), parents before children.

    With ``hard_links``, a file with several names is a file at the first
    name the walk meets and a :attr:`Kind.HARDLINK` to it at the others (the
    walk remembers the files with more than one name, not every file)."""
    first: dict[str, str] = {}
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        path = join(root, rel_dir) if rel_dir else root
        for info in driver.scan(path):
            rel = f"{rel_dir}/{info.name}" if rel_dir else info.name
            entry = to_entry(rel, info)
            if entry is None:
                if on_skip is not None:
                    on_skip(rel, "not a regular file, directory or symbolic link")
                continue
            if hard_links and entry.kind is Kind.FILE and info.links > 1 and entry.identity:
                seen = first.setdefault(entry.identity, rel)
                if seen != rel:
                    entry = Entry(rel, Kind.HARDLINK, entry.size, entry.mtime_ns, entry.mode, entry.identity, seen)
            yield entry
            if entry.kind is Kind.DIR:
                pending.append(rel)


def clean_rel(line: str, where: str) -> str:
    """A manifest line as a relative path, refusing anything that leaves the tree."""
    rel = line.strip("\n").rstrip("\r")
    if rel.startswith("/"):
        raise LocationError(f"{where}: {rel!r} is absolute", hint="manifest paths are relative to SRC_DIR")
    norm = posixpath.normpath(rel)
    if norm == "." or norm.startswith("../") or norm == ".." or "\x00" in norm:
        raise LocationError(f"{where}: {rel!r} leaves the source tree", hint="give paths inside SRC_DIR")
    return norm


def manifest_entries(
    driver: Driver, root: str, lines: Iterable[str], on_skip: Skip | None = None, name: str = "manifest"
) -> Iterator[Entry]:
    """The entries a ``--files-from`` manifest names, one line at a time, with
    the parent directories they need (each reported once per run of lines
    that share it, as the store deduplicates)."""
    seen_dirs: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        rel = clean_rel(line, f"{name} line {number}")
        parent = posixpath.dirname(rel)
        missing = []
        while parent and parent not in seen_dirs:
            missing.append(parent)
            parent = posixpath.dirname(parent)
        for d in reversed(missing):
            seen_dirs.add(d)
            info = driver.lstat(join(root, d))
            if not info.is_dir or info.link is not None:
                raise TransferCoreError(f"{name} line {number}: {d} is not a directory in the source")
            yield Entry(d, Kind.DIR, 0, info.mtime_ns, info.mode, info.identity)
        if len(seen_dirs) > 100_000:
            seen_dirs.clear()  # bounded memory; a repeat only costs a stat
        info = driver.lstat(join(root, rel))
        entry = to_entry(rel, info)
        if entry is None:
            if on_skip is not None:
                on_skip(rel, "not a regular file, directory or symbolic link")
            continue
        yield entry
