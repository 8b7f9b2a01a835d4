"""Text of MLST/MLSD facts, LIST lines and MDTM times, from ObjectInfo records."""

from __future__ import annotations

import stat as _stat
import time

from ..contract import ObjectInfo


def ftp_time(mtime_ns: int) -> str:
    """``YYYYMMDDHHMMSS`` in UTC, as MDTM and the Modify fact use."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(mtime_ns / 1e9))


def _clean_name(name: str) -> str | None:
    # A name with a line break would let a file name forge reply or listing lines.
    if "\r" in name or "\n" in name:
        return None
    return name


def facts(info: ObjectInfo, *, writable: bool) -> str:
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


def mlsd_text(entries: list[ObjectInfo], *, writable: bool) -> bytes:
    lines = []
    for info in entries:
        line = mlst_line(info, info.name, writable=writable)
        if line is not None:
            lines.append(line + "\r\n")
    return "".join(lines).encode("utf-8", "surrogateescape")


def list_text(entries: list[ObjectInfo]) -> bytes:
    """``ls -l``-like lines, which humans and old clients read."""
    lines = []
    for info in entries:
        name = _clean_name(info.name)
        if name is None:
            continue
        kind = "d" if info.is_dir else "-"
        perms = _stat.filemode(info.mode & 0o7777)[1:]
        when = time.strftime("%b %d %H:%M", time.gmtime(info.mtime_ns / 1e9))
        lines.append(f"{kind}{perms} 1 owner group {info.size:>12} {when} {name}\r\n")
    return "".join(lines).encode("utf-8", "surrogateescape")


def nlst_text(entries: list[ObjectInfo]) -> bytes:
    names = (_clean_name(info.name) for info in entries)
    return "".join(f"{n}\r\n" for n in names if n is not None).encode("utf-8", "surrogateescape")


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
