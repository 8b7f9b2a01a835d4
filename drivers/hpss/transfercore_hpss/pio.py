"""One PIO transfer: a coordinator group, its imported participant group, the
participant thread blocked in ``hpss_PIORegister`` for the whole transfer
(from :mod:`.threads`, kept between transfers), and the watchdog's eye, which
turns a PIO call without progress into an error.

Block handling is delegated to a :class:`BlockHandler` (the writer fills
buffers, the reader drains them); this module only drives the API.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import attrs

from transfercore.blockpool import BlockPool
from transfercore.errors import RESUME_HINT

from . import api, threads
from ._hpss import ffi, lib

log = logging.getLogger(__name__)


class BlockHandler(Protocol):
    def on_block(self, offset: int, length_ptr: object, buffer_ptr: object) -> int:
        """Move one block; return 0 only when the whole length was handled."""


#: Block buffers of ended PIO sessions, for the next ones: a mapping made and faulted in
#: anew for every small file of a tree cost about 0.1 ms a file.  At most this many bytes
#: are kept (a participant's buffer of a write is never touched, so costs no memory).
_BUFFERS = BlockPool(keep=32 * 1024 * 1024)


def block_buffer(size: int) -> tuple[object, Callable[[], None]]:
    """A ``char[]`` of at least ``size`` bytes, and what gives it back once HPSS is done with it.

    Not zeroed: the participant's block buffer is filled before HPSS reads
    it (a write's callback fills all it is asked for or fails; a read's is
    filled by the mover), and a write, whose callbacks point HPSS at a
    buffer of their own, never touches it otherwise, so its pages never
    become resident.  Not from ``malloc``: a freed buffer of 4 MiB stays in
    the allocator's arena of the thread that freed it (glibc raises its
    ``mmap`` threshold past the size of the first one freed), and a server
    grew by about 20 MiB over its first uploads.  From a pool of mappings
    (:mod:`transfercore.blockpool`): page-aligned, as a mover's buffer
    should be, and reused.  Given back only once no callback can come; one
    never given back is unmapped with its last reference.
    """
    view, release = _BUFFERS.take(size)
    return ffi.from_buffer("char[]", view), release


@ffi.def_extern()  # type: ignore[untyped-decorator]
def _tc_pio_callback(arg: object, offset: int, length_ptr: object, buffer_ptr: object) -> int:
    session: PioSession = ffi.from_handle(arg)
    return session._callback(offset, length_ptr, buffer_ptr)


@attrs.frozen
class ExecuteResult:
    rc: int
    #: None when HPSS left BytesMoved unset (BZ4719).
    moved: int | None
    gap_offset: int
    gap_length: int


class Activity:
    """What the watchdog looks at: is a PIO call in flight, when did anything
    last move, and is the callback merely waiting for the caller's data."""

    def __init__(self) -> None:
        self.calls = 0
        self.waiting_for_caller = False
        self.last = time.monotonic()
        self._lock = threading.Lock()

    def touch(self) -> None:
        self.last = time.monotonic()

    def enter(self) -> None:
        with self._lock:
            self.calls += 1
            self.touch()

    def leave(self) -> None:
        with self._lock:
            self.calls -= 1
            self.touch()

    def stalled_for(self) -> float:
        if self.calls <= 0 or self.waiting_for_caller:
            return 0.0
        return time.monotonic() - self.last


class PioSession:
    def __init__(
        self,
        operation: api.PioOperation,
        fd: int,
        block_size: int,
        stripe_width: int,
        handler: BlockHandler,
        watchdog_seconds: float,
        what: str,
    ) -> None:
        self.fd = fd
        self.block_size = block_size
        self.what = what
        self.activity = Activity()
        self._handler = handler
        self._error: BaseException | None = None
        self._error_lock = threading.Lock()
        self._ended = False
        self._end_lock = threading.Lock()
        self._participant_rc: int | None = None
        self._participant_done = threading.Event()

        params = ffi.new("hpss_pio_params_t *")
        params.Operation = operation
        params.ClntStripeWidth = 1
        params.BlockSize = block_size
        params.FileStripeWidth = stripe_width
        params.IOTimeOutSecs = 0  # HPSS default; the watchdog below bounds a hang
        params.Transport = lib.HPSS_PIO_TCPIP
        params.Options = 0  # HPSS_PIO_HANDLE_GAP is broken in 7.4 and 7.5
        self._coord = lib.tc_pio_grp_new()
        self._part = lib.tc_pio_grp_new()
        if self._coord == ffi.NULL or self._part == ffi.NULL:
            raise MemoryError("PIO group handle")
        self._coord = ffi.gc(self._coord, lib.free)
        self._part = ffi.gc(self._part, lib.free)
        api.check(lib.hpss_PIOStart(params, self._coord), f"hpss_PIOStart({what})")
        try:
            buf = ffi.new("void **")
            length = ffi.new("unsigned int *")
            api.check(lib.tc_PIOExportGrp(self._coord, buf, length), "hpss_PIOExportGrp")
            try:
                api.check(lib.hpss_PIOImportGrp(buf[0], length[0], self._part), "hpss_PIOImportGrp")
            finally:
                lib.free(buf[0])
        except BaseException:
            lib.tc_PIOEnd(self._coord)
            raise
        self._buffer: object | None
        self._buffer, self._give_buffer = block_buffer(block_size)
        self._self_handle = ffi.new_handle(self)
        threads.start(self._participate, f"hpss-participant {what}")
        threads.watchdog.watch(self, watchdog_seconds)

    # -- threads -------------------------------------------------------------

    def _participate(self) -> None:
        rc = lib.tc_PIORegister(
            0, self._buffer, self.block_size, self._part, lib._tc_pio_callback, self._self_handle
        )
        self._participant_rc = rc
        end_rc = lib.tc_PIOEnd(self._part)
        if rc != 0 and not self._ended:
            self.fail(_error_for(rc, "hpss_PIORegister"))
            # The coordinator would wait for a participant that is gone.
            self.end()
        elif end_rc != 0:
            self.fail(_error_for(end_rc, "hpss_PIOEnd (participant)"))
        self._participant_done.set()

    # -- the watchdog's (threads.watchdog) --------------------------------------

    def stalled_for(self) -> float:
        return self.activity.stalled_for()

    def hung(self, stalled: float) -> None:
        self.fail(
            api.HpssHung(
                f"HPSS PIO on {self.what} made no progress for {stalled:.0f} s",
                hint="check the HPSS movers; the restart marker is kept: " + RESUME_HINT,
            )
        )
        self.end()

    def _callback(self, offset: int, length_ptr: object, buffer_ptr: object) -> int:
        self.activity.touch()
        try:
            rc = self._handler.on_block(offset, length_ptr, buffer_ptr)
        except BaseException as exc:  # an exception must not cross into C
            self.fail(exc)
            rc = 1
        self.activity.touch()
        return rc

    # -- calls -----------------------------------------------------------------

    @property
    def error(self) -> BaseException | None:
        return self._error

    def fail(self, exc: BaseException) -> None:
        with self._error_lock:
            if self._error is None:
                self._error = exc

    def execute(self, offset: int, size: int) -> ExecuteResult:
        moved = ffi.new("u_signed64 *", api.BYTES_MOVED_SENTINEL)
        gap = ffi.new("hpss_pio_gapinfo_t *")
        self.activity.enter()
        try:
            rc = lib.tc_PIOExecute(self.fd, offset, size, self._coord, gap, moved)
        finally:
            self.activity.leave()
        value = int(moved[0])
        return ExecuteResult(
            rc, None if value == api.BYTES_MOVED_SENTINEL else value, int(gap.Offset), int(gap.Length)
        )

    def end(self) -> None:
        """PIOEnd on the coordinator group (once); the participant then leaves
        Register and ends its own group."""
        with self._end_lock:
            if self._ended:
                return
            self._ended = True
        rc = lib.tc_PIOEnd(self._coord)
        if rc != 0:
            self.fail(_error_for(rc, "hpss_PIOEnd (coordinator)"))

    @property
    def participant_gone(self) -> bool:
        """The participant left ``hpss_PIORegister``: no callback can come any more."""
        return self._participant_done.is_set()

    def close(self, timeout: float = 30.0) -> None:
        """End both groups whatever happened, and wait for the participant."""
        self.end()
        if self._participant_done.wait(timeout):
            # The callback can no longer fire, so the handle that points back
            # at this session can go: without it the session and its block
            # buffer are freed now, not at the next garbage collection (a
            # server storing many files held hundreds of MiB that way).
            self._self_handle = None
            self._buffer = None
            self._give_buffer()
        else:
            self.fail(api.HpssHung(f"HPSS participant for {self.what} did not leave hpss_PIORegister"))
        threads.watchdog.forget(self)


def _error_for(rc: int, what: str) -> BaseException:
    try:
        api.check(rc, what)
    except BaseException as exc:
        return exc
    return RuntimeError(f"{what} returned {rc}")
