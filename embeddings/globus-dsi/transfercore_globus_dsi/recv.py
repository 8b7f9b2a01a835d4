"""A STOR or ESTO reaching the DSI: what the upload is (a resume, an update in
place, a spooled upload without ``ALLO``), the writer or spool it goes into,
and which data path carries its blocks (C, :mod:`.sink`, or Python per block,
:class:`.upload.Upload`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from transfercore.contract import Writer
from transfercore.errors import IsADirectory, NotFound, RestartRejected

from . import glue
from .restart import held_marker, held_unsized
from .session import Session
from .sink import SinkUpload
from .upload import Upload

if TYPE_CHECKING:
    from transfercore.gridftp.spool import Spool
    from transfercore.gridftp.upload import StorePlan

log = logging.getLogger("transfercore.globus_dsi")


def _ranges(range_list: Any) -> list[tuple[int, int]]:
    out = []
    off = glue.ffi.new("globus_off_t *")
    length = glue.ffi.new("globus_off_t *")
    for i in range(glue.lib.globus_range_list_size(range_list)):
        glue.lib.globus_range_list_at(range_list, i, off, length)
        out.append((int(off[0]), int(length[0])))
    return out


def do_recv(session: Session, op: Any, info: Any) -> None:
    path = session.path(glue.text(info.pathname))
    size = int(info.alloc_size) if info.alloc_size > 0 else None
    to_receive = _ranges(info.range_list)
    # without ALLO the spool is what resumes (and checks the marker)
    held = held_marker(to_receive, size) if size is not None else None
    resuming = held is not None or (size is None and held_unsized(to_receive) is not None)
    # The server truncates for a STOR, and not for an ESTO nor for the restart (REST) of a STOR.
    offset = max(0, int(info.partial_offset))
    if offset > 0 and resuming:
        raise RestartRejected(
            f"cannot resume the partial upload (ESTO) of {path}: the DSI restarts whole uploads only",
            hint="send the partial upload again from its start",
        )
    update = offset > 0 or (not info.truncate and not resuming)
    plan = _update_plan(session, path, offset, size) if update else None
    # sets the server's write offsets; the hint itself is not needed
    glue.lib.globus_gridftp_server_get_write_range(op, glue.ffi.NULL, glue.ffi.NULL)
    caps = session.driver.capabilities()
    writer: Writer | None = None
    spool = None
    if size is None:
        spool = _open_spool(session, path, to_receive)
    else:
        writer = session.driver.open_write(path, plan.object_size(size) if plan is not None else size, held)
    upload = _make_upload(session, op, path, writer, spool, plan)
    if plan is not None and writer is not None:
        try:
            upload._copy_kept(writer, plan.kept(size or 0)[0])
        except BaseException:
            writer.abort()
            glue.release(upload)
            raise
    if caps.ordered_writes:
        glue.lib.globus_gridftp_server_set_ordered_data(op, 1)
    concurrency = glue.ffi.new("int *")
    block = glue.ffi.new("globus_size_t *")
    glue.lib.globus_gridftp_server_get_optimal_concurrency(op, concurrency)
    glue.lib.globus_gridftp_server_get_block_size(op, block)
    interval = glue.ffi.new("int *")
    glue.lib.globus_gridftp_server_get_update_interval(op, interval)
    glue.lib.globus_gridftp_server_begin_transfer(op, 0, glue.ffi.NULL)
    period = session.config.durable_period(float(interval[0] or 5))
    upload.start_flusher(period)
    # A small fresh upload's start says nothing its end line does not (it ends within
    # moments); each line is a write to the log file, which waits for the file system's
    # journal like the upload's own files (about a quarter of a ms per file in a tree).
    quiet = plan is None and held is None and isinstance(upload, SinkUpload) and upload.small
    level = logging.DEBUG if quiet else logging.INFO
    if log.isEnabledFor(level):  # (the arguments cost more than the check)
        log.log(
            level,
            "upload %s: size %s, resume %s, %d buffers of %d bytes%s, %s",
            path, size, held or (spool.resumed if spool is not None and spool.resumed else "none"),
            concurrency[0], block[0], ", ordered" if caps.ordered_writes else "",
            "spooled (durable spool)" if spool is not None and spool.restartable else
            "spooled (in memory, no 111)" if spool is not None else upload.data_path,
        )
    if isinstance(upload, SinkUpload):
        upload.begin(max(1, concurrency[0]), max(1, int(block[0])), period)
        return
    with upload.lock:
        upload.pending = max(1, concurrency[0])
    upload.block = max(1, int(block[0]))
    for _ in range(max(1, concurrency[0])):
        upload.buffers.append(glue.ffi.new("globus_byte_t[]", upload.block))
    for buf in upload.buffers:
        try:
            upload.register(buf, upload.block)
        except BaseException as exc:
            with upload.lock:
                upload.pending -= 1
                if upload.error is None:
                    upload.error = exc
                done = upload.pending == 0 and not upload.finished
                if done:
                    upload.finished = True
            if done:
                upload.finish()


def _make_upload(
    session: Session, op: Any, path: str, writer: Writer | None, spool: Spool | None, plan: StorePlan | None
) -> Upload:
    """The C data path when the writer lends its descriptor (a plain STOR), else Python per block."""
    lend = getattr(writer, "lend_fd", None)
    if writer is not None and plan is None and lend is not None and hasattr(glue.lib, "tc_sink_new"):
        fd = lend()
        if isinstance(fd, int) and fd >= 0:
            return SinkUpload(session, op, path, writer, fd)
    return Upload(session, op, path, writer, spool, plan)


def _open_spool(session: Session, path: str, to_receive: list[tuple[int, int]]) -> Spool:
    """The spool of an upload without ``ALLO``, as ``transfercore serve`` keeps it
    (:func:`transfercore.gridftp.spooled.open_spool`).

    Beside the destination (or in the ``spool=`` directory), under a hidden
    partial name and with a record of its durable ranges once a marker is
    due, so its 111 markers are honest and a ``REST`` resumes into it; until
    then, and for storage without local paths, in memory.
    """
    from transfercore.gridftp.spooled import open_spool

    driver = session.driver
    limit = session.config.max_spool
    return open_spool(driver, path, driver.local_path(path), spool_dir=session.config.spool,
                      resume=held_unsized(to_receive), limit=limit, memory_limit=limit)


def _update_plan(session: Session, path: str, offset: int, size: int | None) -> StorePlan:
    """The in-place update of ``path`` from ``offset`` (``size`` bytes, when announced)."""
    from transfercore.gridftp.upload import DEFAULT_REORDER_WINDOW, StorePlan

    try:
        info = session.driver.stat(path)
        if info.is_dir:
            raise IsADirectory(f"{path} is a directory", errno=21)
        base = info.size
    except NotFound:
        base = 0
    caps = session.driver.capabilities()
    if caps.ordered_writes and offset > base:
        raise RestartRejected(
            f"Cannot store at offset {offset}: the object holds {base} bytes and this storage "
            "writes in order only, so an update may start at most at its end.",
            hint=f"use an offset of at most {base}, or store the whole object",
        )
    return StorePlan(
        path=path, target=path, size=size, restart=None, ordered=caps.ordered_writes,
        writers=caps.max_writers, window=DEFAULT_REORDER_WINDOW, piece=caps.preferred_block_size,
        offset=offset, base=base,
    )
