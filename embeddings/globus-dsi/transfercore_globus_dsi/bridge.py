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
  stall the data connections.  Its results are handed to the server
  (``update_range_recvd``) by a Globus thread: the next data callback, or a
  Globus timer (``tc_periodic_start``) while the client's data stall; no
  Python thread ever calls Globus.
* The last ``durable()`` and ``complete()`` run in the Globus thread after
  the last byte arrived, announced with ``globus_thread_blocking_will_block``
  so the server keeps its event loop going in another thread.

Each upload logs how long its data callbacks spent in Python.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from transfercore.errors import NotFound, TransferCoreError

from . import glue
from .config import parse_config
from .opening import open_driver
from .session import Session

# do_send, do_stat/do_command, do_recv are imported at their first call: a
# session starts (Python and imports, in every new process) with what its
# login needs.

log = logging.getLogger("transfercore.globus_dsi")


class _Formatter(logging.Formatter):
    """Times to the second, formatted once a second rather than once a line (a tree of
    small files logs a line per file, and ``strftime`` was a fifth of the Python of writing one)."""

    _second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        second = int(record.created)
        if self._second[0] != second:
            self._second = (second, super().formatTime(record, datefmt))
        return self._second[1]


def _setup_logging(path: str) -> None:
    root = logging.getLogger("transfercore")
    if any(getattr(h, "_tc_dsi", False) for h in root.handlers):
        return
    try:
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        handler = logging.StreamHandler()
    handler._tc_dsi = True  # type: ignore[attr-defined]
    handler.setFormatter(_Formatter("%(asctime)s %(process)d %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
    # This process is the server's session: nothing in it logs threads, multiprocessing names or
    # the caller's source line, so records need not look them up (each upload logs a line)
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    class _ToServerLog(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            level = glue.lib.GLOBUS_GFS_LOG_ERR if record.levelno >= logging.ERROR else glue.lib.GLOBUS_GFS_LOG_WARN
            message = " ".join(record.getMessage().split())
            glue.lib.tc_server_log(level, message.encode("utf-8", "replace"))

    # by its level, so an INFO line (one per upload) does not take this handler's lock
    root.addHandler(_ToServerLog(logging.WARNING))


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
                _failed(what, exc, quiet)
                try:
                    fail(exc)
                except BaseException:
                    log.exception("%s: reporting the failure to the server failed", what)

        run.__name__ = fn.__name__
        return run

    return wrap


#: an entry point's function, imported at its first call (:func:`_lazy`)
_entries: dict[tuple[str, str], Callable[..., None]] = {}


def _lazy(module: str, name: str) -> Callable[..., None]:
    """``name`` of this package's ``module``, imported at the first call: a session starts
    with what its login needs (see above), and later calls pay one dictionary look-up."""
    fn = _entries.get((module, name))
    if fn is None:
        fn = getattr(importlib.import_module(f"{__package__}.{module}"), name)
        _entries[module, name] = fn
    return fn


def _failed(what: str, exc: BaseException, quiet: tuple[type[BaseException], ...]) -> None:
    if isinstance(exc, quiet):
        log.debug("%s: %s", what, exc)
    elif isinstance(exc, TransferCoreError):
        log.warning("%s failed: %s", what, exc)
    else:
        log.exception("%s failed", what)


def _entry(
    what: str, fn: Callable[[Session, Any, Any], None], fail: Callable[[Any, BaseException], None],
    op: Any, info: Any, arg: Any, quiet: tuple[type[BaseException], ...] = (),
) -> None:
    """Run one operation's entry point; it finishes its operation, whatever Python raised."""
    try:
        fn(glue.ffi.from_handle(arg), op, info)
    except BaseException as exc:
        _failed(what, exc, quiet)
        try:
            fail(op, exc)
        except BaseException:
            log.exception("%s: reporting the failure to the server failed", what)


def install(ffi: Any, lib: Any, import_seconds: float = 0.0) -> None:
    """Bind the compiled module's ``ffi``/``lib`` and define the entry points."""
    glue.bind(ffi, lib)
    _setup_logging(glue.text(glue.lib.tc_log_path()))
    #: the first session logs what its start-up cost
    startup = {"python": float(lib.tc_python_start_seconds()), "imports": import_seconds}

    @glue.ffi.def_extern()
    def tc_py_warm() -> None:
        # A warm process (see warm.py) imports now what its session would import when
        # it begins, before any client waits: the entry points' modules and the driver's.
        t = time.perf_counter()
        names = [f"{__package__}.{m}" for m in ("namespace", "recv", "download")]
        names += os.environ.pop("TRANSFERCORE_DSI_WARM_IMPORTS", "").split()
        for name in names:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - the session imports it again and reports why
                log.warning("warm start: importing %s failed", name, exc_info=True)
        startup["imports"] += time.perf_counter() - t

    @glue.ffi.def_extern()
    def tc_py_session_start(op: Any, info: Any) -> None:
        def fail(exc: BaseException) -> None:
            glue.lib.globus_gridftp_server_finished_session_start(op, glue.error_result(exc), glue.ffi.NULL, glue.ffi.NULL, glue.ffi.NULL)

        @_guard("session start", fail)
        def body() -> None:
            try:
                started()
            finally:
                gc.enable()

        def started() -> None:
            raw = glue.ffi.new("char **")
            glue.lib.globus_gridftp_server_get_config_string(op, raw)
            options = glue.text(raw[0])
            if raw[0] != glue.ffi.NULL:
                glue.lib.free(raw[0])
            config = parse_config(options)
            t = time.perf_counter()
            session = Session(config, open_driver(config.location, config.entry_point))
            opened = time.perf_counter() - t
            handle = glue.keep(session)
            waited = float(glue.lib.tc_warm_waited())
            log.info(
                "session for %s: driver %s, serving %s (start-up: Python %.0f ms, imports %.0f ms, driver %.0f ms; "
                "process CPU so far %.0f ms%s)",
                glue.text(info.username) or "?", session.driver.name, session.base,
                1000 * startup.pop("python", 0.0), 1000 * startup.pop("imports", 0.0), 1000 * opened,
                1000 * time.process_time(), f"; warm, waited {waited:.1f} s for its connection" if waited >= 0 else "",
            )
            # What start-up imported lives as long as the process: out of the collector's way
            # (a many-file session otherwise spent about 5 % of its samples in full collections).
            # The collector was off while it was created (the module's init code): collections
            # over it were about 4 % of a session's start-up CPU.
            gc.freeze()
            gc.enable()
            glue.lib.globus_gridftp_server_finished_session_start(op, glue.lib.GLOBUS_SUCCESS, handle, info.username, glue.ffi.new("char[]", b"/"))

        body()

    @glue.ffi.def_extern()
    def tc_py_session_stop(arg: Any) -> None:
        try:
            session = glue.ffi.from_handle(arg)
            session.close()
            glue.release(session)
        except BaseException:
            log.exception("session stop failed")

    # The server stats every upload's target before STOR, so a tree of small files enters
    # tc_py_stat and tc_py_recv once per file: these entry points import their module once
    # and make no closures per call (a relative import in a function runs importlib's
    # package lookup in Python every time; the per-call wrappers were about 5 % of a
    # session's Python per file).
    def stat_failed(op: Any, exc: BaseException) -> None:
        glue.lib.globus_gridftp_server_finished_stat(op, glue.error_result(exc), glue.ffi.NULL, 0)

    def command_failed(op: Any, exc: BaseException) -> None:
        glue.lib.globus_gridftp_server_finished_command(op, glue.error_result(exc), glue.ffi.NULL)

    def transfer_failed(op: Any, exc: BaseException) -> None:
        glue.lib.globus_gridftp_server_finished_transfer(op, glue.error_result(exc))

    @glue.ffi.def_extern()
    def tc_py_stat(op: Any, info: Any, arg: Any) -> None:
        # not found is normal there: the server stats every upload's target first
        _entry("stat", _lazy("namespace", "do_stat"), stat_failed, op, info, arg, (NotFound,))

    @glue.ffi.def_extern()
    def tc_py_command(op: Any, info: Any, arg: Any) -> None:
        _entry("command", _lazy("namespace", "do_command"), command_failed, op, info, arg)

    @glue.ffi.def_extern()
    def tc_py_recv(op: Any, info: Any, arg: Any) -> None:
        _entry("upload", _lazy("recv", "do_recv"), transfer_failed, op, info, arg)

    @glue.ffi.def_extern()
    def tc_py_send(op: Any, info: Any, arg: Any) -> None:
        _entry("download", _lazy("download", "do_send"), transfer_failed, op, info, arg)

    @glue.ffi.def_extern()
    def tc_py_read_cb(op: Any, result: int, buf: Any, nbytes: int, offset: int, eof: int, arg: Any) -> None:
        transfer = glue.ffi.from_handle(arg)
        try:
            transfer.on_read(result, buf, nbytes, offset, bool(eof))
        except BaseException as exc:
            log.exception("read callback failed")
            transfer.abandon(exc)

    @glue.ffi.def_extern()
    def tc_py_report_cb(arg: Any) -> None:
        try:
            glue.ffi.from_handle(arg).on_timer()
        except BaseException:
            log.exception("marker report failed")

    @glue.ffi.def_extern()
    def tc_py_report_stopped(arg: Any) -> None:
        # the marker timer can no longer run: the upload's handle may go
        try:
            glue.release(glue.ffi.from_handle(arg))
        except BaseException:
            log.exception("releasing an upload failed")

    @glue.ffi.def_extern()
    def tc_py_sink_done(arg: Any) -> None:
        # the C data path's last read callback returned (a Globus thread)
        upload = glue.ffi.from_handle(arg)
        try:
            upload.on_done()
        except BaseException as exc:
            log.exception("finishing an upload failed")
            if not upload.ended:
                upload.abandon(exc)

    @glue.ffi.def_extern()
    def tc_py_write_cb(op: Any, result: int, buf: Any, nbytes: int, arg: Any) -> None:
        transfer = glue.ffi.from_handle(arg)
        try:
            transfer.on_write(result, buf, nbytes)
        except BaseException as exc:
            log.exception("write callback failed")
            transfer.abandon(exc)


__all__ = ["install"]
