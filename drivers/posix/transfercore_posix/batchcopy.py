"""Small local files copied as a batch by one C call (``batchcopy.c``).

A tree copy spends most of its time per file, not per byte: in Python each
small file cost about 0.5 ms of interpreter work and thread hand-offs, where
``cp`` spends under 0.1 ms.  Here the whole batch runs in C with the
interpreter's lock released, in five steps:

1. each source opened without following links, checked against the walk's
   size, time and identity, read whole, checked again by name, checksummed
   (CRC32C) and written under its hidden partial name with its permissions
   and time;
2. one durable point: one ``syncfs(2)`` of the destination file system where
   that is known to reach the media (``batch_sync``), else an ``fsync`` of
   every file (and always of a file whose directory is on another file
   system, below a mount point in the tree);
3. every file read back and its CRC32C compared with the source's;
4. each renamed to its final name;
5. the new names durable: one more ``syncfs`` for all the directories of
   the batch on that file system when there are several, else each
   directory synced once.

Only a file through all five is returned as published; the rest come back
``None`` with their partial file removed, and the caller copies them the
ordinary way, which says what is wrong.  The promise is that of
``PosixDriver.complete_batch``: nothing is published unverified or before it
is durable, and nothing returned as published is lost.
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Sequence

from transfercore.contract import LocalFile, ObjectInfo
from transfercore.driverkit import TOKEN_HEX

from . import names

try:
    from ._batchcopy import ffi, lib  # type: ignore[import-not-found]
except ImportError:  # built without a C compiler: files go one by one
    ffi = lib = None

#: The checksum the C routine computes.
ALGORITHM = "crc32c"
TOKEN_BYTES = TOKEN_HEX // 2
#: Files from this size have their pages dropped once read back (``keep_cache``).
DROP_FROM = 64 * 1024


def available() -> bool:
    return lib is not None


def copy_batch(
    files: Sequence[LocalFile], locals_: Sequence[str], *, use_syncfs: bool, verify: bool, drop_cache: bool
) -> list[tuple[str, ObjectInfo] | None]:
    """Copy ``files`` (destinations at the local paths ``locals_``); see the module."""
    n = len(files)
    items = ffi.new("tc_item[]", n)
    # One draw of randomness for the batch's partial-file tokens, not one per file.
    tokens = os.urandom(TOKEN_BYTES * n).hex()
    step = 2 * TOKEN_BYTES
    # Every path of the batch in one C buffer (four a file, NUL-terminated, the
    # order tc_bind_paths takes): four objects a file cost more than the copy.
    parts: list[str] = []
    for i, (f, local) in enumerate(zip(files, locals_, strict=True)):
        cut = local.rfind("/")
        directory, name = (local[:cut] or "/"), local[cut + 1:]
        partial = names.partial_name(name, tokens[i * step:(i + 1) * step])
        parts += (f.source, f"{directory}/{partial}" if cut > 0 else f"/{partial}", local, directory)
        it = items[i]
        it.size = f.size
        it.mtime_ns = f.mtime_ns
        it.dev = f.dev
        it.ino = f.ino
        it.mode = f.mode
    strings = os.fsencode("\0".join(parts) + "\0")
    keep = ffi.new("char[]", strings)  # (lives as long as the call)
    if lib.tc_bind_paths(items, n, keep, len(strings)) != 0:
        return [None] * n
    rc = lib.tc_copy_batch(items, n, 1 if use_syncfs else 0, 1 if verify else 0, DROP_FROM if drop_cache else 2**62)
    if rc != 0:
        return [None] * n
    out: list[tuple[str, ObjectInfo] | None] = []
    ok = lib.TC_OK
    for i, f in enumerate(files):
        it = items[i]
        if it.stage != ok:
            out.append(None)
            continue
        info = ObjectInfo(path=f.path, size=f.size, mtime_ns=it.dst_mtime_ns, is_dir=False,
                          identity=f"{it.dst_dev}:{it.dst_ino}", mode=stat_mod.S_IMODE(f.mode),
                          version=str(it.dst_ctime_ns), links=1)
        out.append((f"{it.crc:08x}" if verify else "", info))
    return out
