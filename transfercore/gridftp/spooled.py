"""A finished spooled upload (no ``ALLO``), written into the storage and published: ``serve`` and the DSI.

The spool holds the data at their data offsets; once the last byte is in,
the size is known, so the object is written whole (with the bytes an
``ESTO`` update keeps around its slice), completed, and published under its
name only then.  A failure removes the copy and keeps the spool for a
restart.  Blocking: run it off an event loop.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading

from ..contract import Driver, Writer
from ..driverkit import check_parent_directory
from ..errors import IsADirectory, PermissionDenied
from ..ranges import RangeSet
from .inplace import copy_kept
from .spool import MEMORY_FIRST, Spool
from .upload import StorePlan, check_spooled


def store_spooled(
    driver: Driver, spool: Spool, path: str, plan: StorePlan | None, stop: threading.Event | None = None
) -> int:
    """Write ``spool`` into the object at ``path`` as ``plan`` says (``None``: a plain ``STOR``); its size.

    A spool with holes stores nothing (:func:`check_spooled`).
    """
    writer, length = write_spooled(driver, spool, path, plan, stop)
    try:
        writer.complete()
        if plan is not None and plan.renames:
            driver.rename(plan.target, plan.path)
    except BaseException:
        drop_spooled(driver, writer, plan)
        raise
    return length


def write_spooled(
    driver: Driver, spool: Spool, path: str, plan: StorePlan | None, stop: threading.Event | None = None
) -> tuple[Writer, int]:
    """The first half of :func:`store_spooled`: every byte written, the writer not yet completed.

    The caller completes it (alone, or with others in one batch), renames
    the target when the plan says so, and on failure calls :func:`drop_spooled`.
    """
    never = threading.Event()
    length = check_spooled(spool.received())
    target = plan.target if plan is not None else path
    writer: Writer = driver.open_write(target, plan.object_size(length) if plan is not None else length, None)
    try:
        if plan is not None:
            before, after = plan.kept(length)
            copy_kept(driver, plan.path, plan.base or 0, writer, before, stop or never)
            spool.copy_into(writer, stop, plan.offset, length)
            copy_kept(driver, plan.path, plan.base or 0, writer, after, stop or never)
        else:
            spool.copy_into(writer, stop, 0, length)
    except BaseException:
        drop_spooled(driver, writer, plan)
        raise
    return writer, length


def check_writable(driver: Driver, path: str, local: str | None) -> None:
    """Refuse, before any data is accepted, an upload that could not be stored at ``path``.

    With a local path (``local``) the directory is looked at (it exists, is a
    directory this process may write in, and ``path`` is no directory):
    a few ``stat`` calls instead of a writer opened and aborted per upload,
    which created and removed a partial file.  Storage without local paths
    gets that probe writer.  A failure only the write itself meets (a full
    disk) comes after the data, and stores nothing.
    """
    if local is None:
        probe: Writer = driver.open_write(path, 0, None)
        probe.abort()
        return
    directory = os.path.dirname(local)
    check_parent_directory(directory, path)
    if os.path.isdir(local) or local == directory:
        raise IsADirectory(f"{path} is a directory; it cannot be written as an object", errno=errno.EISDIR)
    # access() also answers EROFS for a read-only file system
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionDenied(f"cannot create {path}: its directory is not writable", errno=errno.EACCES)


def open_spool(
    driver: Driver,
    path: str,
    local: str | None,
    *,
    spool_dir: str | None,
    resume: RangeSet | None,
    limit: int | None,
    memory_limit: int | None,
) -> Spool:
    """The spool of an upload without ``ALLO`` at ``path`` (``local``: its local path), once the
    upload is known storable (:func:`check_writable`).  Blocking.

    It stays in the destination's storage (beside it, under a hidden partial
    name) unless the operator named ``spool_dir``, or in memory for storage
    without local paths (then bounded by ``memory_limit``, else ``limit``).
    It starts in memory either way (:data:`MEMORY_FIRST`): a small upload
    that ends before a marker is due never touches the disk on its way.
    """
    check_writable(driver, path, local)
    directory = spool_dir or (os.path.dirname(local) if local is not None else None)
    key = f"{driver.name}://{driver.authority}{path}"
    return Spool(directory, key=key if directory else None, resume=resume,
                 limit=limit if directory is not None else memory_limit,
                 memory_until=MEMORY_FIRST, make_directory=spool_dir is not None)


def drop_spooled(driver: Driver, writer: Writer, plan: StorePlan | None) -> None:
    """The copy of a spool that was not stored goes; the spool holds the upload for a restart."""
    with contextlib.suppress(Exception):
        writer.abort()
    if plan is not None and plan.renames:
        with contextlib.suppress(Exception):
            driver.discard_partial(plan.target)
            driver.remove(plan.target)


__all__ = ["check_writable", "drop_spooled", "open_spool", "store_spooled", "write_spooled"]
