"""Reading ``strace -f -y`` output: which files a driver wrote and which it synced.

The kit's ``syncs`` clause runs a writer in a child process under strace and
asks one question of the trace: when ``durable()`` returned, had every file
that received the object's bytes been through ``fsync``/``fdatasync`` after
its last write, and the directory of every new name been fsynced after the
name appeared?  This module only parses and judges text; it runs nothing.

``sync_file_range`` does not count (it promises nothing about the device
cache or metadata); ``sync``/``syncfs`` count for every file, and files opened
with ``O_SYNC`` or ``O_DSYNC`` need no separate sync.
"""

from __future__ import annotations

import os
import re

import attrs

_TRACED_NAMES = (
    "open openat creat write pwrite64 writev pwritev pwritev2 fsync fdatasync sync syncfs "
    "rename renameat renameat2 link linkat access faccessat faccessat2"
).split()
#: Syscalls the clause asks strace for; "?" lets strace skip those this
#: architecture lacks (arm64 has no open, access, rename, ...).
TRACED = ",".join(f"?{name}" for name in _TRACED_NAMES)

_LINE = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(\w+)\((.*)\)\s+=\s+(-?\d+|\?)")
_FD_PATH = re.compile(r"^-?\d+<([^>]*)>")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_WRITES = {"write", "pwrite64", "writev", "pwritev", "pwritev2"}
_SYNCS = {"fsync", "fdatasync"}
_NAMES = {"rename", "renameat", "renameat2", "link", "linkat"}
_OPENS = {"open", "openat", "creat"}


@attrs.frozen
class Call:
    name: str
    #: The path of the first descriptor argument (strace -y), or the first path string.
    path: str
    args: str
    result: int
    #: For renames and links: the new name.
    target: str = ""


def _unescape(text: str) -> str:
    return text.encode("latin-1", "backslashreplace").decode("unicode_escape")


def parse(text: str) -> list[Call]:
    """The completed calls in a trace, in order (split ``unfinished``/``resumed`` lines joined)."""
    pending: dict[str, str] = {}
    out: list[Call] = []
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
        path = ""
        fd = _FD_PATH.match(args)
        strings = [_unescape(s) for s in _STRING.findall(args)]
        if name in _WRITES or name in _SYNCS or name == "syncfs":
            path = fd.group(1) if fd else ""
        elif name in _OPENS:
            opened = re.search(r"=\s+\d+<([^>]*)>\s*$", line)
            path = opened.group(1) if opened else (strings[0] if strings else "")
        elif name in _NAMES:
            target = strings[1] if len(strings) > 1 else ""
            out.append(Call(name, strings[0] if strings else "", args, value, target))
            continue
        elif strings:
            path = strings[0]
        out.append(Call(name, path, args, value))
    return out


def _synchronous(args: str) -> bool:
    return "O_SYNC" in args or "O_DSYNC" in args


def _inside(path: str, directory: str) -> bool:
    return os.path.dirname(path) == directory


def written_files(calls: list[Call], directory: str) -> set[str]:
    """Files in ``directory`` that received a write system call in the trace."""
    return {c.path for c in calls if c.name in _WRITES and c.result >= 0 and _inside(c.path, directory)}


def missing_syncs(calls: list[Call], directory: str, begin: str, end: str) -> list[str]:
    """What ``durable()`` (between the ``access`` calls on ``begin`` and ``end``) left unsynced
    among the files in ``directory``; an empty list when everything written was made durable."""
    last_write: dict[str, int] = {}
    last_sync: dict[str, int] = {}
    synchronous: set[str] = set()
    new_names: dict[str, int] = {}
    dir_synced = -1
    whole_sync = -1
    start = stop = None
    for index, call in enumerate(calls):
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
        if call.name in _OPENS and _inside(call.path, directory):
            if _synchronous(call.args):
                synchronous.add(call.path)
            if "O_CREAT" in call.args or call.name == "creat":
                new_names[call.path] = index
        elif call.name in _WRITES and _inside(call.path, directory):
            last_write[call.path] = index
        elif call.name in _SYNCS:
            if call.path == directory:
                dir_synced = index
            else:
                last_sync[call.path] = index
        elif call.name in ("sync", "syncfs"):
            whole_sync = index
        elif call.name in _NAMES and _inside(call.target, directory):
            new_names[call.target] = index
    if start is None or stop is None:
        return ["the trace does not show the durable() call (its bracketing access() calls are missing)"]
    problems = []
    for path, index in sorted(last_write.items()):
        if path in synchronous:
            continue
        if max(last_sync.get(path, -1), whole_sync) < index:
            problems.append(f"{os.path.basename(path)} was written but not fsynced/fdatasynced before durable() returned")
    latest_name = max(new_names.values(), default=-1)
    if latest_name >= 0 and max(dir_synced, whole_sync) < latest_name:
        problems.append(f"the directory {directory} was not fsynced after a new name appeared in it")
    return problems
