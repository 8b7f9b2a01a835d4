"""Reading ``strace -f -y`` output: which files a driver wrote and which it synced.

The kit's ``syncs`` clause runs a writer in a child process under strace and
asks one question of the trace: when ``durable()`` returned, had every file
that received bytes since the writer was opened, wherever it lies, been
through ``fsync``/``fdatasync`` after its last write, and the parent directory
of every name created since (files, directories, rename and link targets)
been fsynced after the name appeared?  This module only parses and judges
text; it runs nothing.

Files are followed by path as ``strace -y`` shows each descriptor's path at
the time of the call; a rename carries what is known of the old name to the
new one, so a file written under a temporary name and synced under its final
one counts as synced.  A file removed before ``durable()`` returned holds
nothing to lose and is not judged.  Only regular paths count: pipes, sockets
and ``/dev``, ``/proc`` and ``/sys`` are not storage.

``sync_file_range`` does not count (it promises nothing about the device
cache or metadata); ``sync``/``syncfs`` count for every file, and files opened
with ``O_SYNC`` or ``O_DSYNC`` need no separate sync.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

import attrs

_TRACED_NAMES = (
    "open openat creat write pwrite64 writev pwritev pwritev2 fsync fdatasync sync syncfs "
    "rename renameat renameat2 link linkat unlink unlinkat mkdir mkdirat access faccessat faccessat2"
).split()
#: Syscalls the clause asks strace for; "?" lets strace skip those this
#: architecture lacks (arm64 has no open, access, rename, ...).
TRACED = ",".join(f"?{name}" for name in _TRACED_NAMES)

_LINE = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(\w+)\((.*)\)\s+=\s+(-?\d+|\?)")
_FD = re.compile(r"(-?\d+|AT_FDCWD)<([^>]*)>")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_WRITES = {"write", "pwrite64", "writev", "pwritev", "pwritev2"}
_SYNCS = {"fsync", "fdatasync"}
_NAMES = {"rename", "renameat", "renameat2", "link", "linkat"}
_OPENS = {"open", "openat", "creat"}
_REMOVES = {"unlink", "unlinkat"}
_MKDIRS = {"mkdir", "mkdirat"}
_AT_CALLS = {"openat", "renameat", "renameat2", "linkat", "unlinkat", "mkdirat", "faccessat", "faccessat2"}
_NOT_STORAGE = ("/dev/", "/proc/", "/sys/")


@attrs.frozen
class Call:
    name: str
    #: The path of the first descriptor argument (strace -y), or the first path
    #: argument made absolute (against its directory descriptor or the working directory).
    path: str
    args: str
    result: int
    #: For renames and links: the new name.
    target: str = ""
    #: The descriptor's file was already unlinked when the call ran (strace's "(deleted)").
    deleted: bool = False


def _unescape(text: str) -> str:
    return text.encode("latin-1", "backslashreplace").decode("unicode_escape")


def _absolute(path: str, base: str) -> str:
    if not path or path.startswith("/") or not base:
        return path
    return os.path.normpath(os.path.join(base, path))


def parse(text: str) -> list[Call]:
    """The completed calls in a trace, in order (split ``unfinished``/``resumed`` lines joined)."""
    pending: dict[str, str] = {}
    out: list[Call] = []
    cwd = ""
    for raw in text.splitlines():
        line = raw.strip()
        head = re.match(r"^(?:\[pid\s+)?(\d+)\]?\s+", line)
        pid = head.group(1) if head else ""
        if line.endswith("<unfinished ...>"):
            pending[pid] = line[: -len("<unfinished ...>")].rstrip()
            continue
        resumed = re.match(r"^(?:\[pid\s+)?(\d+)\]?\s+<\.\.\. \w+ resumed>\s?(.*)$", line)
        if resumed:
            line = pending.pop(pid, "") + resumed.group(2)
        match = _LINE.match(line)
        if not match or match.group(4) == "?":
            continue
        _pid, name, args, result = match.groups()
        value = int(result)
        fds = _FD.findall(args)
        for fd, fd_path in fds:
            if fd == "AT_FDCWD":
                cwd = fd_path
        strings = [_unescape(s) for s in _STRING.findall(args)]
        if name in _AT_CALLS:
            # each path argument follows its directory descriptor
            bases = [p for _fd, p in fds]
            strings = [_absolute(s, bases[i] if i < len(bases) else cwd) for i, s in enumerate(strings)]
        else:
            strings = [_absolute(s, cwd) for s in strings]
        path = ""
        deleted = False
        if name in _WRITES or name in _SYNCS or name == "syncfs":
            first = re.match(r"^-?\d+<([^>]*)>(\(deleted\))?", args)
            if first:
                path, deleted = first.group(1), bool(first.group(2))
        elif name in _OPENS:
            opened = re.search(r"=\s+\d+<([^>]*)>\s*$", line)
            path = opened.group(1) if opened else (strings[0] if strings else "")
        elif name in _NAMES:
            target = strings[1] if len(strings) > 1 else ""
            out.append(Call(name, strings[0] if strings else "", args, value, target))
            continue
        elif strings:
            path = strings[0]
        out.append(Call(name, path, args, value, deleted=deleted))
    return out


def _synchronous(args: str) -> bool:
    return "O_SYNC" in args or "O_DSYNC" in args


def is_storage(path: str) -> bool:
    """Whether ``path`` names a file system object (not a pipe, socket or device)."""
    return path.startswith("/") and not path.startswith(_NOT_STORAGE)


def _window(calls: list[Call], since: str | None) -> Iterable[tuple[int, Call]]:
    started = since is None
    for index, call in enumerate(calls):
        if not started:
            started = call.name.startswith(("access", "faccessat")) and call.path == since
            continue
        yield index, call


def written_files(calls: list[Call], since: str | None = None) -> set[str]:
    """Storage files that received a write system call in the trace (after the ``access``
    of ``since``, when given)."""
    return {
        c.path for _i, c in _window(calls, since)
        if c.name in _WRITES and c.result >= 0 and is_storage(c.path) and not c.deleted
    }


class _Files:
    """What the trace has shown so far of each path: last write, last sync, new names."""

    def __init__(self) -> None:
        self.last_write: dict[str, int] = {}
        self.last_sync: dict[str, int] = {}
        self.synchronous: set[str] = set()
        self.new_names: dict[str, int] = {}

    def _tables(self) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
        return self.last_write, self.last_sync, self.new_names

    def forget(self, path: str) -> None:
        inside = path.rstrip("/") + "/"
        for table in self._tables():
            for key in [k for k in table if k == path or k.startswith(inside)]:
                del table[key]
        self.synchronous = {p for p in self.synchronous if p != path and not p.startswith(inside)}

    def carry(self, old: str, new: str, index: int, *, keep_old: bool) -> None:
        """``old`` (and what lies below it) is now also, or only, reachable as ``new``."""
        inside = old.rstrip("/") + "/"
        for table in (self.last_write, self.last_sync):
            moved = {new + k[len(old):]: v for k, v in table.items() if k == old or k.startswith(inside)}
            if not keep_old:
                for key in [k for k in table if k == old or k.startswith(inside)]:
                    del table[key]
            for key in [k for k in table if k == new or k.startswith(new.rstrip("/") + "/")]:
                del table[key]
            table.update(moved)
        if old in self.synchronous:
            self.synchronous.add(new)
        if not keep_old:
            self.new_names.pop(old, None)
        self.new_names[new] = index


def missing_syncs(calls: list[Call], begin: str, end: str, *, since: str | None = None,
                  root: str = "") -> list[str]:
    """What ``durable()`` (between the ``access`` calls on ``begin`` and ``end``) left
    unsynced among the storage files written and the names created after the ``access``
    of ``since`` (the whole trace when ``None``); an empty list when everything written was
    made durable.  Paths under ``root`` are named relative to it."""
    files = _Files()
    whole_sync = -1
    start = stop = None
    for index, call in _window(calls, since):
        if call.name.startswith(("access", "faccessat")):
            if call.path == begin:
                start = index
            elif call.path == end:
                stop = index
            continue
        if stop is not None:
            break
        if call.result < 0:
            continue
        if call.name in _OPENS and is_storage(call.path):
            if _synchronous(call.args):
                files.synchronous.add(call.path)
            if "O_CREAT" in call.args or call.name == "creat":
                files.new_names.setdefault(call.path, index)
        elif call.name in _WRITES and is_storage(call.path) and not call.deleted:
            files.last_write[call.path] = index
        elif call.name in _SYNCS and not call.deleted:
            files.last_sync[call.path] = index
        elif call.name in ("sync", "syncfs"):
            whole_sync = index
        elif call.name in _NAMES and is_storage(call.target):
            files.carry(call.path, call.target, index, keep_old=call.name.startswith("link"))
        elif call.name in _REMOVES:
            files.forget(call.path)
        elif call.name in _MKDIRS and is_storage(call.path):
            files.new_names[call.path] = index
    if start is None or stop is None:
        return ["the trace does not show the durable() call (its bracketing access() calls are missing)"]

    def shown(path: str) -> str:
        if root and (path == root or path.startswith(root.rstrip("/") + "/")):
            return os.path.relpath(path, root)
        return path

    problems = []
    for path, index in sorted(files.last_write.items()):
        if path in files.synchronous:
            continue
        if max(files.last_sync.get(path, -1), whole_sync) < index:
            problems.append(f"{shown(path)} was written but not fsynced/fdatasynced before durable() returned")
    unsynced_dirs: dict[str, list[str]] = {}
    for path, index in sorted(files.new_names.items()):
        parent = os.path.dirname(path)
        if max(files.last_sync.get(parent, -1), whole_sync) < index:
            unsynced_dirs.setdefault(parent, []).append(os.path.basename(path))
    for parent, entries in sorted(unsynced_dirs.items()):
        problems.append(f"the directory {shown(parent) if shown(parent) != '.' else parent} was not fsynced "
                        f"after a new name appeared in it ({', '.join(entries)})")
    return problems
