"""stat (and so SIZE, MDTM, MLST, MLSD, LIST, NLST), MKD, RMD, DELE, RNTO and CKSM."""

from __future__ import annotations

import os
import posixpath
import stat as statmod
from typing import Any

from transfercore import checksums
from transfercore.contract import ObjectInfo
from transfercore.driverkit import checksum_range
from transfercore.errors import CapabilityError, StorageError

from . import glue
from .session import Session


def _fill_stat(entry: Any, info: ObjectInfo, name: str, keep: list[Any]) -> None:
    kind = statmod.S_IFDIR if info.is_dir else statmod.S_IFREG
    entry.mode = kind | (info.mode & 0o7777)
    entry.nlink = 2 if info.is_dir else 1
    cname = glue.ffi.new("char[]", name.encode("utf-8", "surrogateescape"))
    keep.append(cname)
    entry.name = cname
    entry.symlink_target = glue.ffi.NULL
    entry.uid = os.getuid()
    entry.gid = os.getgid()
    entry.size = info.size
    seconds = info.mtime_ns // 1_000_000_000
    entry.atime = seconds
    entry.ctime = seconds
    entry.mtime = seconds
    entry.dev = 0
    entry.ino = hash(info.identity or info.path) & 0x7FFFFFFF


def do_stat(session: Session, op: Any, info: Any) -> None:
    client = glue.text(info.pathname)
    path = session.path(client)
    obj = session.driver.stat(path)
    rows: list[tuple[ObjectInfo, str]] = []
    if not obj.is_dir or info.file_only:
        rows.append((obj, posixpath.basename(client.rstrip("/")) or "/"))
    else:
        if info.include_path_stat:
            rows.append((obj, posixpath.basename(client.rstrip("/")) or "/"))
        rows.append((obj, "."))
        parent = session.driver.stat(posixpath.dirname(path)) if path != session.base else obj
        rows.append((parent, ".."))
        for child in session.driver.list(path):
            if "\r\n" in child.name:
                # The server ends each listing line with CR LF: such a name would forge
                # the next.  Refused rather than left out (a recursive download would end
                # without it, unsaid); a lone CR or LF goes as the built-in storage sends it.
                raise StorageError(f"cannot list {client}: the name {child.name!r} in it holds CR LF, which "
                                   "no listing line can carry", hint="rename it")
            rows.append((child, child.name))
    array = glue.ffi.new("globus_gfs_stat_t[]", len(rows))
    keep: list[Any] = []
    for i, (row, name) in enumerate(rows):
        _fill_stat(array[i], row, name, keep)
    glue.lib.globus_gridftp_server_finished_stat(op, glue.lib.GLOBUS_SUCCESS, array, len(rows))


def _checksum(session: Session, path: str, algorithm: str, offset: int, length: int) -> str:
    name = checksums.canonical(algorithm)
    whole = offset == 0 and length < 0
    if whole:
        stored = session.driver.checksum(path, name)
        if stored:
            return stored
    with session.driver.open_read(path) as reader:
        if whole:
            return checksums.checksum_reader(reader, name, parallel=1)
        end = reader.size if length < 0 else min(reader.size, offset + length)
        if offset < 0 or offset > reader.size:
            from transfercore.errors import InvalidRead

            raise InvalidRead(f"checksum offset {offset} is outside 0-{reader.size}")
        return checksum_range(reader, name, offset, end)


def do_command(session: Session, op: Any, info: Any) -> None:
    cmd = info.command
    path = session.path(glue.text(info.pathname))
    response: bytes | None = None
    if cmd == glue.lib.GLOBUS_GFS_CMD_MKD:
        session.driver.mkdir(path)
    elif cmd == glue.lib.GLOBUS_GFS_CMD_RMD:
        session.driver.rmdir(path)
    elif cmd == glue.lib.GLOBUS_GFS_CMD_DELE:
        if session.driver.stat(path).is_dir:
            from transfercore.errors import IsADirectory

            raise IsADirectory(f"{glue.text(info.pathname)} is a directory; use RMD")
        session.driver.remove(path)
    elif cmd == glue.lib.GLOBUS_GFS_CMD_RNTO:
        session.driver.rename(session.path(glue.text(info.from_pathname)), path)
    elif cmd == glue.lib.GLOBUS_GFS_CMD_CKSM:
        algorithm = glue.text(info.cksm_alg) or "MD5"
        response = _checksum(session, path, algorithm, info.cksm_offset, info.cksm_length).encode()
    elif cmd == glue.lib.GLOBUS_GFS_CMD_SITE_CHMOD:
        session.driver.set_metadata(path, mode=info.chmod_mode & 0o7777)
    elif cmd == glue.lib.GLOBUS_GFS_CMD_SITE_UTIME:
        session.driver.set_metadata(path, mtime_ns=int(info.utime_time) * 1_000_000_000)
    else:
        names = {
            glue.lib.GLOBUS_GFS_CMD_SITE_CHGRP: "SITE CHGRP",
            glue.lib.GLOBUS_GFS_CMD_TRNC: "TRNC",
        }
        raise CapabilityError(f"the transfercore DSI does not implement {names.get(cmd, f'command {cmd}')}")
    glue.lib.globus_gridftp_server_finished_command(op, glue.lib.GLOBUS_SUCCESS, glue.ffi.new("char[]", response) if response else glue.ffi.NULL)
