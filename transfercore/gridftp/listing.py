"""Text of MLST/MLSD facts, LIST lines and MDTM times, from ObjectInfo records."""

from __future__ import annotations

import stat as _stat
import time
from collections import deque
from collections.abc import Callable, Iterable

from ..contract import Driver, ObjectInfo
from ..partialnames import is_partial_name


def ftp_time(mtime_ns: int) -> str:
    """``YYYYMMDDHHMMSS`` in UTC, as MDTM and the Modify fact use."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(mtime_ns / 1e9))


def _clean_name(name: str) -> str | None:
    # A name with a line break would let a file name forge reply lines.
    if "\r" in name or "\n" in name:
        return None
    return name


def _listed_name(name: str) -> str:
    """A name as a listing over the data connection carries it: a lone CR or
    LF in it as it is, as Globus sends it (each line ends with CR LF, which
    the client splits on).  A name that holds CR LF would end its line early
    and make the next; the listing is refused rather than sent without it (a
    client's recursive download would end without the file, unsaid)."""
    if "\r\n" in name:
        from .errors import ReplyError

        raise ReplyError(550, f"cannot list {name!r}: its name holds CR LF, which no listing line can carry; "
                              "rename it.")
    return name


def facts(info: ObjectInfo, *, writable: bool) -> str:
    if info.link is not None:
        # As Globus lists a link it does not follow (MLSR): its own type and target.
        target = _clean_name(info.link)
        tail = "" if target is None or ";" in target else f"UNIX.slink={target};"
        return f"Type=slink;Modify={ftp_time(info.mtime_ns)};Size={info.size};Perm=;{tail}"
    kind = "dir" if info.is_dir else "file"
    if info.is_dir:
        perm = "elcmpf" if writable else "el"
    else:
        perm = "radfw" if writable else "r"
    mode = info.mode & 0o7777
    return f"Type={kind};Modify={ftp_time(info.mtime_ns)};Size={info.size};Perm={perm};UNIX.mode={mode:04o};"


def mlst_line(info: ObjectInfo, shown_path: str, *, writable: bool) -> str | None:
    name = _clean_name(shown_path)
    return None if name is None else f"{facts(info, writable=writable)} {name}"


def _mlsd_line(info: ObjectInfo, name: str, *, writable: bool) -> str:
    return f"{facts(info, writable=writable)} {_listed_name(name)}\r\n"


def mlsd_text(entries: list[ObjectInfo], *, writable: bool) -> bytes:
    return "".join(_mlsd_line(info, info.name, writable=writable) for info in entries).encode(
        "utf-8", "surrogateescape")


def _ls_text(info: ObjectInfo, shown: str) -> str:
    kind = "d" if info.is_dir else "-"
    perms = _stat.filemode(info.mode & 0o7777)[1:]
    when = time.strftime("%b %d %H:%M", time.gmtime(info.mtime_ns / 1e9))
    return f"{kind}{perms} 1 owner group {info.size:>12} {when} {shown}"


def ls_line(info: ObjectInfo, name: str) -> str | None:
    """One ``ls -l``-like line for a reply (STAT of a path); ``None`` for a name that cannot be shown."""
    shown = _clean_name(name)
    return None if shown is None else _ls_text(info, shown)


def list_text(entries: list[ObjectInfo]) -> bytes:
    """``ls -l``-like lines, which humans and old clients read."""
    return "".join(f"{_ls_text(info, _listed_name(info.name))}\r\n" for info in entries).encode(
        "utf-8", "surrogateescape")


def nlst_text(entries: list[ObjectInfo]) -> bytes:
    return "".join(f"{_listed_name(info.name)}\r\n" for info in entries).encode("utf-8", "surrogateescape")


def mlsr_text(root: ObjectInfo, entries: list[tuple[str, ObjectInfo]], *, writable: bool) -> bytes:
    """MLSR as Globus sends it: the directory itself as ``Type=cdir`` named ``.``, then
    every entry below it named by its path relative to it."""
    head = facts(root, writable=writable).replace("Type=dir;", "Type=cdir;", 1)
    lines = [f"{head} .\r\n"]
    lines += (_mlsd_line(info, relative, writable=writable) for relative, info in entries)
    return "".join(lines).encode("utf-8", "surrogateescape")


#: MLSR of a larger tree is refused: its listing is built in memory.
MAX_MLSR_ENTRIES = 1_000_000


def walk(
    list_dir: Callable[[str], Iterable[ObjectInfo]],
    path: str,
    *,
    hidden: Callable[[str], bool],
    limit: int = MAX_MLSR_ENTRIES,
) -> list[tuple[str, ObjectInfo]]:
    """Every entry below the directory ``path``, breadth first, each with its path relative to it.

    ``list_dir`` must report symbolic links as links (``Driver.scan``): a link
    is listed, never followed, so a link loop cannot make the walk endless.
    """
    from .errors import ReplyError

    found: list[tuple[str, ObjectInfo]] = []
    todo: deque[tuple[str, str]] = deque([(path.rstrip("/") or "/", "")])
    while todo:
        directory, prefix = todo.popleft()
        children = sorted((e for e in list_dir(directory) if not hidden(e.name)), key=lambda e: e.name)
        for info in children:
            relative = f"{prefix}{info.name}"
            found.append((relative, info))
            if len(found) > limit:
                raise ReplyError(
                    501, f"MLSR: more than {limit} entries below {path}; list its subdirectories one by one."
                )
            if info.is_dir and info.link is None and not info.special:
                todo.append((f"{directory.rstrip('/')}/{info.name}", f"{relative}/"))
    return found


def listing_body(verb: str, path: str, is_dir: bool, entries: list[ObjectInfo], *, writable: bool) -> bytes:
    """The data of an MLSD, LIST or NLST reply; MLSD of a file is refused (501)."""
    from .errors import ReplyError

    if verb == "MLSD":
        if not is_dir:
            raise ReplyError(501, f"{path} is not a directory; use MLST for a file.")
        return mlsd_text(entries, writable=writable)
    if verb == "LIST":
        return list_text(entries)
    return nlst_text(entries)


def render(driver: Driver, path: str, shown: str, verb: str, *, writable: bool) -> bytes:
    """The listing data of ``verb`` (MLSD, MLSR, LIST, NLST) for the driver path ``path``,
    shown to the client as ``shown``; partial uploads are never listed.  Blocking."""
    info = driver.stat(path)
    if verb == "MLSR":
        if not info.is_dir:
            return mlsd_text([info], writable=writable)
        return mlsr_text(info, walk(driver.scan, path, hidden=is_partial_name), writable=writable)
    entries = list(driver.list(path)) if info.is_dir else [info]
    entries = sorted((e for e in entries if not is_partial_name(e.name)), key=lambda e: e.name)
    return listing_body(verb, shown, info.is_dir, entries, writable=writable)
