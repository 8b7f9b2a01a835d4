"""The Python half of the DSI: Globus storage-interface calls onto a transfercore driver.

Runs inside the embedded interpreter of ``globus-gridftp-server``'s session
process.  The C part forwards every interface call here; everything that
touches storage goes through the driver the DSI options name.

Where Python runs relative to the network path:

* ``Writer.write`` / ``Reader.readinto`` run in the Globus thread that
  completed the data read or write (the event thread with the default
  ``-threads 0``, one of N with ``-threads N``), one call per block of the
  server's block size.  The byte copy itself releases the GIL (``pwrite``).
* ``Writer.durable()`` (``fdatasync`` and the resume record) runs in a
  Python thread of its own, never in a Globus thread, so a flush does not
  stall the data connections.  Its results are handed to the Globus thread
  of the next data callback, which alone calls Globus
  (``update_range_recvd``); no Python thread ever calls Globus.
* The last ``durable()`` and ``complete()`` run in the Globus thread after
  the last byte arrived, announced with ``globus_thread_blocking_will_block``
  so the server keeps its event loop going in another thread.

Each upload logs how long its data callbacks spent in Python.
"""

from __future__ import annotations

import logging
import os
import posixpath
import stat as statmod
import threading
import time
from collections.abc import Callable
from typing import Any

from transfercore import checksums
from transfercore.contract import ObjectInfo, Reader, Writer
from transfercore.errors import CapabilityError, InvalidWrite, NotFound, TransferCoreError
from transfercore.ranges import RangeSet
from transfercore.registry import Endpoint, open_location

from .config import DsiConfig, parse_config
from .paths import driver_path
from .replies import error_reply, one_line
from .restart import TO_END, held_marker, new_ranges

log = logging.getLogger("transfercore.globus_dsi")

ffi: Any = None
lib: Any = None
#: Live objects whose cffi handles Globus holds (sessions, transfers).
_alive: dict[int, Any] = {}
_alive_lock = threading.Lock()


def _keep(obj: Any) -> Any:
    handle = ffi.new_handle(obj)
    with _alive_lock:
        _alive[id(obj)] = (obj, handle)
    return handle


def _release(obj: Any) -> None:
    with _alive_lock:
        _alive.pop(id(obj), None)


def _text(ptr: Any) -> str:
    return "" if ptr == ffi.NULL else ffi.string(ptr).decode("utf-8", "surrogateescape")


def _error_result(exc: BaseException) -> Any:
    reply = error_reply(exc)
    return lib.tc_error(reply.code, reply.error_code.encode(), reply.text.encode("utf-8", "replace"))


def _result_text(result: int) -> str:
    buf = ffi.new("char[]", 2048)
    lib.tc_result_text(result, buf, 2048)
    return one_line(_text(buf)) or f"Globus error {result}"


def _setup_logging(path: str) -> None:
    root = logging.getLogger("transfercore")
    if any(getattr(h, "_tc_dsi", False) for h in root.handlers):
        return
    try:
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        handler = logging.StreamHandler()
    handler._tc_dsi = True  # type: ignore[attr-defined]
    fmt = logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")
    handler.setFormatter(fmt)
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    class _ToServerLog(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                level = lib.GLOBUS_GFS_LOG_ERR if record.levelno >= logging.ERROR else lib.GLOBUS_GFS_LOG_WARN
                lib.tc_server_log(level, one_line(record.getMessage()).encode("utf-8", "replace"))

    root.addHandler(_ToServerLog())


class Session:
    """One client session: the driver and the directory clients see as ``/``."""

    def __init__(self, config: DsiConfig, endpoint: Endpoint) -> None:
        self.config = config
        self.endpoint = endpoint
        self.driver = endpoint.driver
        self.base = endpoint.path

    def path(self, client_path: str) -> str:
        return driver_path(self.base, client_path)

    def close(self) -> None:
        try:
            self.driver.close()
        except Exception:
            log.exception("closing the driver failed")


# -- stat and commands --------------------------------------------------------------------------


def _fill_stat(entry: Any, info: ObjectInfo, name: str, keep: list[Any]) -> None:
    kind = statmod.S_IFDIR if info.is_dir else statmod.S_IFREG
    entry.mode = kind | (info.mode & 0o7777)
    entry.nlink = 2 if info.is_dir else 1
    cname = ffi.new("char[]", name.encode("utf-8", "surrogateescape"))
    keep.append(cname)
    entry.name = cname
    entry.symlink_target = ffi.NULL
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
    client = _text(info.pathname)
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
            if "\n" in child.name or "\r" in child.name:
                continue  # a name with a line break would forge listing lines
            rows.append((child, child.name))
    array = ffi.new("globus_gfs_stat_t[]", len(rows))
    keep: list[Any] = []
    for i, (row, name) in enumerate(rows):
        _fill_stat(array[i], row, name, keep)
    lib.globus_gridftp_server_finished_stat(op, lib.GLOBUS_SUCCESS, array, len(rows))


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
        hasher = checksums.new(name)
        pos = offset
        while pos < end:
            n = min(4 * 1024 * 1024, end - pos)
            data = reader.read(pos, n)
            if len(data) != n:
                raise TransferCoreError(f"short read at {pos} while computing the checksum of {path}")
            hasher.update(data)
            pos += n
        return hasher.hexdigest()


def do_command(session: Session, op: Any, info: Any) -> None:
    cmd = info.command
    path = session.path(_text(info.pathname))
    response: bytes | None = None
    if cmd == lib.GLOBUS_GFS_CMD_MKD:
        session.driver.mkdir(path)
    elif cmd == lib.GLOBUS_GFS_CMD_RMD:
        session.driver.rmdir(path)
    elif cmd == lib.GLOBUS_GFS_CMD_DELE:
        if session.driver.stat(path).is_dir:
            from transfercore.errors import IsADirectory

            raise IsADirectory(f"{_text(info.pathname)} is a directory; use RMD")
        session.driver.remove(path)
    elif cmd == lib.GLOBUS_GFS_CMD_RNTO:
        session.driver.rename(session.path(_text(info.from_pathname)), path)
    elif cmd == lib.GLOBUS_GFS_CMD_CKSM:
        algorithm = _text(info.cksm_alg) or "MD5"
        response = _checksum(session, path, algorithm, info.cksm_offset, info.cksm_length).encode()
    else:
        raise CapabilityError(f"the transfercore DSI does not implement command {cmd}")
    lib.globus_gridftp_server_finished_command(op, lib.GLOBUS_SUCCESS, ffi.new("char[]", response) if response else ffi.NULL)


# -- uploads ------------------------------------------------------------------------------------


class Upload:
    """One STOR/ESTO: Globus read callbacks into a driver writer, markers from ``durable()``."""

    def __init__(self, session: Session, op: Any, path: str, writer: Writer | None, spool: Any = None) -> None:
        self.session = session
        self.op = op
        self.path = path
        self.writer = writer
        self.spool = spool
        self.lock = threading.Lock()
        self.pending = 0
        self.eof = False
        self.error: BaseException | None = None
        self.finished = False
        self.reported = writer.resumed if writer is not None else RangeSet()
        self.to_report: list[RangeSet] = []
        self.received = 0
        self.python_seconds = 0.0
        self.write_seconds = 0.0
        self.callbacks = 0
        self.buffers: list[Any] = []
        self.block = 0
        self.stop = threading.Event()
        self.flusher: threading.Thread | None = None
        caps = session.driver.capabilities()
        self.write_slots = threading.BoundedSemaphore(max(1, caps.max_writers))
        self.handle = _keep(self)

    # the durable() thread: never calls Globus
    def start_flusher(self, period: float) -> None:
        if self.writer is None or self.session.config.markers == "off":
            return
        self.flusher = threading.Thread(target=self._flush_loop, args=(period,), name="tc-dsi-durable", daemon=True)
        self.flusher.start()

    def _flush_loop(self, period: float) -> None:
        assert self.writer is not None
        while not self.stop.wait(period):
            try:
                marker = self.writer.durable()
            except BaseException as exc:  # a failed flush fails the upload
                log.error("durable() failed for %s: %s", self.path, exc)
                with self.lock:
                    if self.error is None:
                        self.error = exc
                return
            self._queue_marker(marker)

    def _queue_marker(self, marker: RangeSet) -> None:
        with self.lock:
            fresh = new_ranges(marker, self.reported)
            if fresh:
                self.reported = self.reported | fresh
                self.to_report.append(fresh)

    def _report(self) -> None:
        """Hand queued durable ranges to the server (Globus thread only)."""
        with self.lock:
            batches, self.to_report = self.to_report, []
        for batch in batches:
            for r in batch:
                lib.globus_gridftp_server_update_range_recvd(self.op, r.start, r.length)

    def register(self, buf: Any, size: int) -> None:
        result = lib.globus_gridftp_server_register_read(self.op, buf, size, lib.tc_py_read_cb, self.handle)
        if result != lib.GLOBUS_SUCCESS:
            raise TransferCoreError(f"the server refused a data read: {_result_text(result)}")

    def on_read(self, result: int, buf: Any, nbytes: int, offset: int, eof: bool) -> None:
        start = time.perf_counter()
        failed = result != lib.GLOBUS_SUCCESS
        if failed:
            with self.lock:
                if self.error is None:
                    self.error = TransferCoreError(f"the data connection failed: {_result_text(result)}")
        elif nbytes:
            try:
                view = memoryview(ffi.buffer(buf, nbytes))
                t = time.perf_counter()
                if self.spool is not None:
                    self.spool.write(offset, view)
                else:
                    assert self.writer is not None
                    with self.write_slots:
                        self.writer.write(offset, view)
                self.write_seconds += time.perf_counter() - t
                lib.globus_gridftp_server_update_bytes_recvd(self.op, nbytes)
            except BaseException as exc:
                with self.lock:
                    if self.error is None:
                        self.error = exc
        self._report()
        again = False
        with self.lock:
            self.pending -= 1
            self.received += nbytes
            self.callbacks += 1
            if eof:
                self.eof = True
            if not self.eof and self.error is None:
                self.pending += 1
                again = True
        if again:
            try:
                self.register(buf, self.block)
            except BaseException as exc:
                with self.lock:
                    self.pending -= 1
                    if self.error is None:
                        self.error = exc
        with self.lock:
            self.python_seconds += time.perf_counter() - start
            done = self.pending == 0 and not self.finished and (self.eof or self.error is not None)
            if done:
                self.finished = True
        if done:
            self.finish()

    def finish(self) -> None:
        """After the last callback: make it durable and complete, or keep the partial (Globus thread)."""
        lib.tc_will_block()
        self.stop.set()
        if self.flusher is not None:
            self.flusher.join()
        error = self.error
        try:
            if error is None:
                self._complete()
        except BaseException as exc:
            error = exc
        if error is not None:
            self._keep_partial()
        self._report()
        log.info(
            "upload %s: %d bytes in %d data callbacks; %.3f s in Python on Globus data threads, "
            "%.3f s of it in Writer.write%s",
            self.path, self.received, self.callbacks, self.python_seconds, self.write_seconds,
            f"; failed: {error}" if error is not None else "",
        )
        if error is not None and not isinstance(error, TransferCoreError):
            log.error("upload %s failed: %s: %s", self.path, type(error).__name__, error)
        elif error is not None:
            log.warning("upload %s failed: %s", self.path, error)
        lib.globus_gridftp_server_finished_transfer(self.op, lib.GLOBUS_SUCCESS if error is None else _error_result(error))
        if self.spool is not None:
            self.spool.close()
        _release(self)

    def _complete(self) -> None:
        if self.spool is not None:
            got = self.spool.received()
            size = got.end()
            if got != RangeSet.span(0, size):
                raise InvalidWrite(f"the upload of {self.path} left holes: received {got or 'nothing'}")
            writer = self.session.driver.open_write(self.path, size, None)
            try:
                self.spool.copy_into(writer)
                writer.complete()
            except BaseException:
                writer.abort()
                raise
            return
        assert self.writer is not None
        if self.session.config.markers != "off":
            self._queue_marker(self.writer.durable())
        self.writer.complete()

    def _keep_partial(self) -> None:
        if self.writer is None:
            return
        try:
            if self.session.config.markers != "off":
                self._queue_marker(self.writer.durable())
        except BaseException as exc:
            log.warning("no final marker for %s: %s", self.path, exc)
        try:
            self.writer.abort()
        except BaseException as exc:
            log.warning("abort of %s failed: %s", self.path, exc)


def _ranges(range_list: Any) -> list[tuple[int, int]]:
    out = []
    off = ffi.new("globus_off_t *")
    length = ffi.new("globus_off_t *")
    for i in range(lib.globus_range_list_size(range_list)):
        lib.globus_range_list_at(range_list, i, off, length)
        out.append((int(off[0]), int(length[0])))
    return out


def do_recv(session: Session, op: Any, info: Any) -> None:
    path = session.path(_text(info.pathname))
    if info.partial_offset > 0:
        raise CapabilityError("ESTO with an offset is not supported by the transfercore DSI; use STOR with REST")
    size = int(info.alloc_size) if info.alloc_size > 0 else None
    held = held_marker(_ranges(info.range_list), size)
    # sets the server's write offsets; the hint itself is not needed
    lib.globus_gridftp_server_get_write_range(op, ffi.NULL, ffi.NULL)
    caps = session.driver.capabilities()
    writer: Writer | None = None
    spool = None
    if size is None:
        from transfercore.gridftp.spool import Spool

        spool = Spool(session.config.spool)
    else:
        writer = session.driver.open_write(path, size, held)
    upload = Upload(session, op, path, writer, spool)
    if caps.ordered_writes:
        lib.globus_gridftp_server_set_ordered_data(op, 1)
    concurrency = ffi.new("int *")
    block = ffi.new("globus_size_t *")
    lib.globus_gridftp_server_get_optimal_concurrency(op, concurrency)
    lib.globus_gridftp_server_get_block_size(op, block)
    interval = ffi.new("int *")
    lib.globus_gridftp_server_get_update_interval(op, interval)
    lib.globus_gridftp_server_begin_transfer(op, 0, ffi.NULL)
    upload.start_flusher(session.config.durable_period(float(interval[0] or 5)))
    log.info(
        "upload %s: size %s, resume %s, %d buffers of %d bytes%s",
        path, size, held or "none", concurrency[0], block[0], ", ordered" if caps.ordered_writes else "",
    )
    with upload.lock:
        upload.pending = max(1, concurrency[0])
    upload.block = max(1, int(block[0]))
    for _ in range(max(1, concurrency[0])):
        upload.buffers.append(ffi.new("globus_byte_t[]", upload.block))
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


# -- downloads ----------------------------------------------------------------------------------


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
        self.handle = _keep(self)

    def _next_block(self) -> tuple[int, int] | None:
        """Under self.lock: the next (offset, length) to send."""
        while not self.exhausted:
            if self.span is not None and self.span[0] < self.span[1]:
                off, end = self.span
                n = min(self.block, end - off)
                self.span = (off + n, end)
                return off, n
            off = ffi.new("globus_off_t *")
            length = ffi.new("globus_off_t *")
            lib.globus_gridftp_server_get_read_range(self.op, off, length)
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
            view = memoryview(ffi.buffer(buf, n))
            if self.read_lock is not None:
                with self.read_lock:
                    self.reader.readinto(offset, view)
            else:
                self.reader.readinto(offset, view)
            result = lib.globus_gridftp_server_register_write(self.op, buf, n, offset, -1, lib.tc_py_write_cb, self.handle)
            if result != lib.GLOBUS_SUCCESS:
                raise TransferCoreError(f"the server refused a data write: {_result_text(result)}")
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
            if result != lib.GLOBUS_SUCCESS and self.error is None:
                self.error = TransferCoreError(f"the data connection failed: {_result_text(result)}")
            self.sent += nbytes
        self.pump(buf)
        self._maybe_finish()

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
        lib.globus_gridftp_server_finished_transfer(
            self.op, lib.GLOBUS_SUCCESS if self.error is None else _error_result(self.error)
        )
        _release(self)


def do_send(session: Session, op: Any, info: Any) -> None:
    path = session.path(_text(info.pathname))
    reader = session.driver.open_read(path)
    caps = session.driver.capabilities()
    download = Download(op, path, reader, caps.ordered_writes)
    concurrency = ffi.new("int *")
    block = ffi.new("globus_size_t *")
    lib.globus_gridftp_server_get_optimal_concurrency(op, concurrency)
    lib.globus_gridftp_server_get_block_size(op, block)
    download.block = max(1, int(block[0]))
    lib.globus_gridftp_server_begin_transfer(op, 0, ffi.NULL)
    for _ in range(max(1, concurrency[0])):
        download.buffers.append(ffi.new("globus_byte_t[]", download.block))
    for buf in download.buffers:
        if not download.pump(buf):
            break
    download._maybe_finish()


# -- entry points -------------------------------------------------------------------------------


def _guard(
    what: str, fail: Callable[[BaseException], None], quiet: tuple[type[BaseException], ...] = ()
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Every entry point finishes its operation, whatever Python raised."""

    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        def run(*args: Any) -> None:
            try:
                fn(*args)
            except BaseException as exc:
                if isinstance(exc, quiet):
                    log.debug("%s: %s", what, exc)
                elif isinstance(exc, TransferCoreError):
                    log.warning("%s failed: %s", what, exc)
                else:
                    log.exception("%s failed", what)
                try:
                    fail(exc)
                except BaseException:
                    log.exception("%s: reporting the failure to the server failed", what)

        run.__name__ = fn.__name__
        return run

    return wrap


def install(the_ffi: Any, the_lib: Any) -> None:
    """Bind the compiled module's ``ffi``/``lib`` and define the entry points."""
    global ffi, lib
    ffi, lib = the_ffi, the_lib
    _setup_logging(_text(lib.tc_log_path()))

    @ffi.def_extern()
    def tc_py_session_start(op: Any, info: Any) -> None:
        def fail(exc: BaseException) -> None:
            lib.globus_gridftp_server_finished_session_start(op, _error_result(exc), ffi.NULL, ffi.NULL, ffi.NULL)

        @_guard("session start", fail)
        def body() -> None:
            raw = ffi.new("char **")
            lib.globus_gridftp_server_get_config_string(op, raw)
            options = _text(raw[0])
            if raw[0] != ffi.NULL:
                lib.free(raw[0])
            config = parse_config(options)
            session = Session(config, open_location(config.location))
            handle = _keep(session)
            log.info("session for %s: driver %s, serving %s", _text(info.username) or "?", session.driver.name, session.base)
            lib.globus_gridftp_server_finished_session_start(op, lib.GLOBUS_SUCCESS, handle, info.username, ffi.new("char[]", b"/"))

        body()

    @ffi.def_extern()
    def tc_py_session_stop(arg: Any) -> None:
        try:
            session = ffi.from_handle(arg)
            session.close()
            _release(session)
        except BaseException:
            log.exception("session stop failed")

    @ffi.def_extern()
    def tc_py_stat(op: Any, info: Any, arg: Any) -> None:
        def fail(exc: BaseException) -> None:
            lib.globus_gridftp_server_finished_stat(op, _error_result(exc), ffi.NULL, 0)

        # the server stats every upload's target first: not found is normal there
        _guard("stat", fail, quiet=(NotFound,))(lambda: do_stat(ffi.from_handle(arg), op, info))()

    @ffi.def_extern()
    def tc_py_command(op: Any, info: Any, arg: Any) -> None:
        def fail(exc: BaseException) -> None:
            lib.globus_gridftp_server_finished_command(op, _error_result(exc), ffi.NULL)

        _guard("command", fail)(lambda: do_command(ffi.from_handle(arg), op, info))()

    @ffi.def_extern()
    def tc_py_recv(op: Any, info: Any, arg: Any) -> None:
        def fail(exc: BaseException) -> None:
            lib.globus_gridftp_server_finished_transfer(op, _error_result(exc))

        _guard("upload", fail)(lambda: do_recv(ffi.from_handle(arg), op, info))()

    @ffi.def_extern()
    def tc_py_send(op: Any, info: Any, arg: Any) -> None:
        def fail(exc: BaseException) -> None:
            lib.globus_gridftp_server_finished_transfer(op, _error_result(exc))

        _guard("download", fail)(lambda: do_send(ffi.from_handle(arg), op, info))()

    @ffi.def_extern()
    def tc_py_read_cb(op: Any, result: int, buf: Any, nbytes: int, offset: int, eof: int, arg: Any) -> None:
        try:
            ffi.from_handle(arg).on_read(result, buf, nbytes, offset, bool(eof))
        except BaseException:
            log.exception("read callback failed")

    @ffi.def_extern()
    def tc_py_write_cb(op: Any, result: int, buf: Any, nbytes: int, arg: Any) -> None:
        try:
            ffi.from_handle(arg).on_write(result, buf, nbytes)
        except BaseException:
            log.exception("write callback failed")


__all__ = ["install"]
