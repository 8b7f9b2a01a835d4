"""What a failed run leaves behind: streams stopped, the durable part saved
(or discarded), the journal's row and the listeners told how it ended.

Every step is attempted whatever the one before did: the first error is
the one the caller re-raises, and no clean-up step may hide it.
"""

from __future__ import annotations

from collections.abc import Callable

from ..capabilities import RestartModel
from ..contract import Writer
from ..errors import ChecksumMismatch, SourceChanged, TransferAborted, TransferCoreError
from ..journal import TransferState
from ..ranges import RangeSet
from ..registry import Endpoint
from .events import Event, Failed, Interrupted
from .marking import Markers
from .pump import Pump
from .record import RunRecord
from .verification import Verification


def clean_up(
    exc: BaseException,
    *,
    dst: Endpoint,
    writer: Writer | None,
    published: bool,
    pump: Pump | None,
    verification: Verification | None,
    markers: Markers | None,
    durable: RangeSet,
    record: RunRecord,
    emit: Callable[[Event], None],
) -> None:
    """Stop the streams, save what is durable (or discard it), and record how the run ended.

    ``durable`` is what the destination holds durably when no marker was
    taken yet (``markers`` is None until the streams exist).
    """
    if pump is not None:
        pump.stop()
        pump.join()
    if verification is not None:
        verification.stop()
    mismatch = isinstance(exc, ChecksumMismatch)
    # A partial that mixes two versions of the source is worth nothing.
    discard = isinstance(exc, SourceChanged)
    if writer is not None:
        if not (mismatch or discard):
            try:
                # Without streams no marker can be asked for: nothing was written.
                if dst.driver.capabilities().restart is not RestartModel.NONE and markers is not None:
                    markers.take()
            except BaseException:  # noqa: BLE001 - the first error is the one to report
                pass
        if not published:
            # After a mismatch found before publishing, abort keeps the
            # partial object for inspection; the journal's state makes the
            # next run start from zero.
            try:
                writer.abort()
            except BaseException:  # noqa: BLE001
                pass
    marker = markers.marker if markers is not None else durable
    if writer is not None and discard:
        marker = RangeSet()
        try:
            dst.driver.discard_partial(dst.path)
        except BaseException:  # noqa: BLE001
            pass
    interrupted = isinstance(exc, (KeyboardInterrupt, TransferAborted))
    if interrupted:
        state = TransferState.INTERRUPTED
    elif mismatch:
        state = TransferState.MISMATCH
    else:
        state = TransferState.FAILED
    message = str(exc) or type(exc).__name__
    try:
        if discard:
            record.record_marker(RangeSet())
        record.finish(state, message=message)
    except BaseException:  # noqa: BLE001
        pass
    try:
        text = exc.args[0] if isinstance(exc, TransferCoreError) and exc.args else message
        if interrupted:
            emit(Interrupted(message=text, durable_bytes=marker.total()))
        else:
            emit(
                Failed(
                    error=type(exc).__name__,
                    message=text,
                    hint=getattr(exc, "hint", "") or "",
                    durable_bytes=marker.total(),
                    resumable=not (mismatch or discard),
                )
            )
    except BaseException:  # noqa: BLE001 - a failing listener must not hide the error
        pass
