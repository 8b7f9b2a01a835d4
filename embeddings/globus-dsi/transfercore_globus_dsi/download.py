"""Downloads (RETR, ERET): driver reads into Globus writes."""

from __future__ import annotations

import logging
import threading
from typing import Any

from transfercore.contract import Reader
from transfercore.errors import TransferCoreError

from . import glue
from .restart import TO_END
from .session import Session

log = logging.getLogger("transfercore.globus_dsi")



class Download:
    """One RETR/ERET: driver reads into Globus writes."""

    def __init__(self, op: Any, path: str, reader: Reader, ordered: bool) -> None:
        self.op = op
        self.path = path
        self.reader = reader
        self.lock = threading.Lock()
        self.read_lock = threading.Lock() if ordered else None
        self.pending = 0
        self.error: BaseException | None = None
        self.finished = False
        self.block = 256 * 1024
        self.span: tuple[int, int] | None = None  # (next offset, end) of the current range
        self.exhausted = False
        self.buffers: list[Any] = []
        self.sent = 0
        self.handle = glue.keep(self)

    def _next_block(self) -> tuple[int, int] | None:
        """Under self.lock: the next (offset, length) to send."""
        while not self.exhausted:
            if self.span is not None and self.span[0] < self.span[1]:
                off, end = self.span
                n = min(self.block, end - off)
                self.span = (off + n, end)
                return off, n
            off = glue.ffi.new("globus_off_t *")
            length = glue.ffi.new("globus_off_t *")
            glue.lib.globus_gridftp_server_get_read_range(self.op, off, length)
            if length[0] == 0:
                self.exhausted = True
                return None
            start = int(off[0])
            end = self.reader.size if length[0] == TO_END else min(self.reader.size, start + int(length[0]))
            if start >= self.reader.size:
                self.exhausted = True
                return None
            self.span = (start, end)
        return None

    def pump(self, buf: Any) -> bool:
        """Fill ``buf`` with the next block and hand it to the server; False when nothing is left."""
        with self.lock:
            if self.error is not None:
                return False
            nxt = self._next_block()
            if nxt is None:
                return False
            self.pending += 1
        offset, n = nxt
        try:
            view = memoryview(glue.ffi.buffer(buf, n))
            if self.read_lock is not None:
                with self.read_lock:
                    self.reader.readinto(offset, view)
            else:
                self.reader.readinto(offset, view)
            result = glue.lib.globus_gridftp_server_register_write(self.op, buf, n, offset, -1, glue.lib.tc_py_write_cb, self.handle)
            if result != glue.lib.GLOBUS_SUCCESS:
                raise TransferCoreError(f"the server refused a data write: {glue.result_text(result)}")
        except BaseException as exc:
            with self.lock:
                self.pending -= 1
                if self.error is None:
                    self.error = exc
            return False
        return True

    def on_write(self, result: int, buf: Any, nbytes: int) -> None:
        with self.lock:
            self.pending -= 1
            if result != glue.lib.GLOBUS_SUCCESS and self.error is None:
                self.error = TransferCoreError(f"the data connection failed: {glue.result_text(result)}")
            self.sent += nbytes
        self.pump(buf)
        self._maybe_finish()

    def abandon(self, exc: BaseException) -> None:
        """A bug escaped a callback: end the transfer with the error rather than leave the client waiting."""
        with self.lock:
            if self.finished:
                return
            self.finished = True
        glue.lib.globus_gridftp_server_finished_transfer(self.op, glue.error_result(exc))

    def _maybe_finish(self) -> None:
        with self.lock:
            done = self.pending == 0 and not self.finished and (self.exhausted or self.error is not None)
            if done:
                self.finished = True
        if not done:
            return
        try:
            self.reader.close()
        except Exception:
            log.exception("closing the reader of %s failed", self.path)
        if self.error is not None:
            log.warning("download %s failed: %s", self.path, self.error)
        glue.lib.globus_gridftp_server_finished_transfer(
            self.op, glue.lib.GLOBUS_SUCCESS if self.error is None else glue.error_result(self.error)
        )
        glue.release(self)


def do_send(session: Session, op: Any, info: Any) -> None:
    path = session.path(glue.text(info.pathname))
    reader = session.driver.open_read(path)
    caps = session.driver.capabilities()
    download = Download(op, path, reader, caps.ordered_writes)
    concurrency = glue.ffi.new("int *")
    block = glue.ffi.new("globus_size_t *")
    glue.lib.globus_gridftp_server_get_optimal_concurrency(op, concurrency)
    glue.lib.globus_gridftp_server_get_block_size(op, block)
    download.block = max(1, int(block[0]))
    glue.lib.globus_gridftp_server_begin_transfer(op, 0, glue.ffi.NULL)
    for _ in range(max(1, concurrency[0])):
        download.buffers.append(glue.ffi.new("globus_byte_t[]", download.block))
    for buf in download.buffers:
        if not download.pump(buf):
            break
    download._maybe_finish()
