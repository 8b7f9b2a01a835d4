"""The compiled module's ``ffi`` and ``lib``, bound once by :func:`bridge.install`, and
the small conversions every part of the bridge needs."""

from __future__ import annotations

import threading
from typing import Any

ffi: Any = None
lib: Any = None
#: Live objects whose cffi handles Globus holds (sessions, transfers).
_alive: dict[int, Any] = {}
_alive_lock = threading.Lock()


def bind(the_ffi: Any, the_lib: Any) -> None:
    global ffi, lib
    ffi, lib = the_ffi, the_lib


def keep(obj: Any) -> Any:
    handle = ffi.new_handle(obj)
    with _alive_lock:
        _alive[id(obj)] = (obj, handle)
    return handle


def release(obj: Any) -> None:
    with _alive_lock:
        _alive.pop(id(obj), None)


def text(ptr: Any) -> str:
    return "" if ptr == ffi.NULL else ffi.string(ptr).decode("utf-8", "surrogateescape")


def error_result(exc: BaseException) -> Any:
    # the reply table (transfercore.gridftp) only when something failed
    from .replies import error_reply

    reply = error_reply(exc)
    return lib.tc_error(reply.code, reply.error_code.encode(), reply.text.encode("utf-8", "replace"))


def result_text(result: int) -> str:
    from .replies import one_line

    buf = ffi.new("char[]", 2048)
    lib.tc_result_text(result, buf, 2048)
    return one_line(text(buf)) or f"Globus error {result}"
