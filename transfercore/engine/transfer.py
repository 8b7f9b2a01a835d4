"""One transfer from a source to a destination, any two drivers.

The control thread (the caller of :meth:`Transfer.run`) opens both ends,
decides what to resume, starts the streams, takes restart markers on the
policy's schedule, emits events, and verifies the whole object.  Only
markers the destination returned from ``Writer.durable()`` reach the journal.

Verification reads the destination back.  When its writer can read back its
durable bytes (``Writer.read_durable``, declared as ``read_back``), that
happens in a background thread in step with the markers (see :mod:`.verify`),
and a mismatch is found before the object is published.  Only a destination
that cannot read back is verified after publishing (through the storage's own
checksum or by reading the published object), and a mismatch then removes it
(see :mod:`.verification`).

This module keeps the public face (:class:`Transfer`, :func:`copy`,
:class:`TransferResult`) and the order of one run's steps; each step is
a small object of its own module (see :class:`_Run`).
"""

from __future__ import annotations

import os
import threading
import time

import attrs

from ..capabilities import RestartModel
from ..checksums import Hasher
from ..contract import ObjectInfo, Writer
from ..errors import IsADirectory, LocationError, NotFound, SourceChanged, TransferCoreError
from ..journal import Journal, JournalEntry, TransferState
from ..location import Location
from ..ranges import RangeSet
from ..registry import Endpoint, open_location
from .events import Done, Event, Listener, Listeners, Restarted, Resumed, Started, UpToDate
from .failure import clean_up
from .identity import source_identity
from .loop import ByteLoop
from .marking import Markers
from .opening import Opening, destination_record
from .options import TransferOptions
from .policy import MarkerPolicy
from .pump import Pump
from .record import RunRecord
from .scheduler import plan_blocks
from .sourcewatch import SourceWatch
from .verification import Verification

Where = str | Location | Endpoint


@attrs.frozen
class TransferResult:
    """How a finished transfer went."""

    transfer_id: int | None
    source: str
    destination: str
    size: int
    #: Bytes written to the destination by this run.
    bytes_sent: int
    #: Bytes the destination already held durably and kept.
    bytes_resumed: int
    marker: RangeSet
    checksum_algorithm: str | None
    checksum: str | None
    elapsed: float
    #: Why a partial transfer was not resumed (None when it was, or there was none).
    restart_reason: str | None
    #: True when a finished copy still matched and nothing was sent.
    up_to_date: bool = False


class Transfer:
    """One transfer.  Create it, add listeners, call :meth:`run` once.

    ``journal`` records the transfer and its markers so that a later run of
    the same source and destination resumes; without one, every run starts
    from zero.
    """

    def __init__(
        self,
        source: Where,
        destination: Where,
        options: TransferOptions | None = None,
        *,
        journal: Journal | None = None,
    ) -> None:
        self.source = source
        self.destination = destination
        self.options = options or TransferOptions()
        self.journal = journal
        self._listeners = Listeners()
        self._cancel = threading.Event()
        self._wake = threading.Event()
        self._ran = False
        #: The journal's id of this transfer, once known (None without a journal).
        self.transfer_id: int | None = None

    # -- public API ----------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event)`` for every event (see :mod:`.events`)."""
        self._listeners.add(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def cancel(self) -> None:
        """Stop the transfer from any thread; :meth:`run` then raises
        :class:`~transfercore.errors.TransferAborted` after saving a marker."""
        self._cancel.set()
        self._wake.set()

    def run(self) -> TransferResult:
        if self._ran:
            raise TransferCoreError("a Transfer runs once; create a new one to copy again")
        self._ran = True
        opened: list[Endpoint] = []
        try:
            src = _endpoint(self.source, opened)
            dst = _endpoint(self.destination, opened)
            return _Run(self, src, dst).execute()
        finally:
            for endpoint in opened:
                endpoint.driver.close()

    # -- for _Run ------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        self._listeners.emit(event)


def copy(
    source: Where,
    destination: Where,
    options: TransferOptions | None = None,
    *,
    journal: Journal | None = None,
    listeners: tuple[Listener, ...] | list[Listener] = (),
) -> TransferResult:
    """Copy one object and return the result; see :class:`Transfer`."""
    transfer = Transfer(source, destination, options, journal=journal)
    for listener in listeners:
        transfer.add_listener(listener)
    return transfer.run()


def _endpoint(where: Where, opened: list[Endpoint]) -> Endpoint:
    if isinstance(where, Endpoint):
        return where
    endpoint = open_location(where)
    opened.append(endpoint)
    return endpoint


def _object_url(endpoint: Endpoint) -> str:
    return str(attrs.evolve(endpoint.location, options=()))


def _same_object(a: Endpoint, b: Endpoint) -> bool:
    return (
        a.location.driver == b.location.driver
        and a.location.authority == b.location.authority
        and os.path.normpath(a.path) == os.path.normpath(b.path)
    )


class _Run:
    """The state of one run (kept off :class:`Transfer` so a run cannot leak into another).

    It opens the ends and puts the run's jobs together, each a small object
    of its own module: the resume decision and the writer (:mod:`.opening`),
    the journal's row (:mod:`.record`), the byte loop (:mod:`.loop`) and its
    markers (:mod:`.marking`), the source watch (:mod:`.sourcewatch`),
    verification (:mod:`.verification`) and the clean-up of a failed run
    (:mod:`.failure`).
    """

    def __init__(self, transfer: Transfer, src: Endpoint, dst: Endpoint) -> None:
        self.t = transfer
        self.options = transfer.options
        self.src = src
        self.dst = dst
        # The journal keys a transfer by the objects, not by how they are
        # opened: a run with other driver options resumes the same object
        # (the destination driver still checks the marker).
        self.src_url = _object_url(src)
        self.dst_url = _object_url(dst)
        self.record = RunRecord(transfer.journal, self.src_url, self.dst_url, on_entry=self._entry_changed)
        self.started = time.monotonic()
        self.opening: Opening | None = None
        self.pump: Pump | None = None
        self.markers: Markers | None = None
        self.verification: Verification | None = None
        self.published = False
        self.size = 0

    def _entry_changed(self, entry: JournalEntry | None) -> None:
        self.t.transfer_id = entry.id if entry is not None else None

    # -- the whole run -------------------------------------------------------------

    def execute(self) -> TransferResult:
        if _same_object(self.src, self.dst):
            raise LocationError(
                f"source and destination are the same object ({self.src_url})",
                hint="give a different destination path",
            )
        info = self._stat_source()
        journal = self.record.journal
        lock = journal.claim(self.src_url, self.dst_url) if journal is not None else None
        try:
            return self._execute(info)
        finally:
            if lock is not None:
                lock.release()

    def _execute(self, info: ObjectInfo) -> TransferResult:
        caps_src = self.src.driver.capabilities()
        caps_dst = self.dst.driver.capabilities()
        block_size = max(self.options.block_size or caps_dst.preferred_block_size, caps_dst.min_block_size)
        checksum: str | None = None
        emit, cancel, wake = self.t._emit, self.t._cancel, self.t._wake
        with self.src.driver.open_read(self.src.path) as reader:
            self.size = info.size
            if reader.size != info.size:
                raise SourceChanged(
                    f"source {self.src_url} changed while opening it (size {info.size} -> {reader.size})",
                    hint="copy it again once the source is stable",
                )
            identity = source_identity(info, reader)
            watch = SourceWatch(self.src, self.src_url, info, identity, reader)
            opening = self.opening = Opening(self.dst, self.size, self.options, self.record)
            decision = opening.decide(identity, caps_dst)
            if decision.up_to_date:
                return self._up_to_date()
            try:
                writer = opening.open_writer(decision, identity)
                resumed = opening.resumed
                self._announce(block_size, decision.note)
                policy = self.options.marker_policy
                if caps_dst.restart is RestartModel.NONE:
                    policy = MarkerPolicy.none()
                hasher = Hasher(self.options.checksum) if self.options.checksum else None
                blocks = plan_blocks(self.size, resumed, block_size, include_have=hasher is not None)
                verification = self.verification = Verification(
                    self.dst,
                    writer,
                    self.size,
                    hasher,
                    block_size=block_size,
                    streams=self.options.streams,
                    progress_interval=self.options.progress_interval,
                    emit=emit,
                    cancel=cancel,
                    wake=wake,
                )
                pump = self.pump = Pump(
                    reader,
                    writer,
                    blocks,
                    streams=self.options.streams,
                    max_writers=caps_dst.max_writers,
                    ordered_reads=caps_src.ordered_writes,
                    ordered_writes=caps_dst.ordered_writes,
                    hasher=hasher,
                    wake=wake,
                )
                markers = self.markers = Markers(
                    writer,
                    resumed,
                    self.size,
                    written=lambda: resumed | pump.written(),
                    record=self.record,
                    emit=emit,
                    on_durable=verification.advance,
                )
                verification.start(caps_dst.read_back, resumed)
                ByteLoop(
                    pump,
                    markers,
                    verification,
                    watch,
                    size=self.size,
                    resumed=resumed,
                    started=self.started,
                    progress_interval=self.options.progress_interval,
                    emit=emit,
                    cancel=cancel,
                    wake=wake,
                ).run(policy)
                if caps_dst.restart is not RestartModel.NONE:
                    markers.take(final=True)
                if verification.reading_back:
                    # Verified before publishing: a mismatch never appears under the final name.
                    markers.wait_all_durable(cancel)
                    checksum = verification.finish_read_back()
                # Last look at the source before the name appears: a change
                # during the copy means the object mixes two versions.
                watch.check_unchanged()
                self._publish(writer)
                if not verification.reading_back and hasher is not None:
                    # Only a destination that cannot read back before publishing
                    # gets here (see Verification.start): it is verified once named.
                    assert not caps_dst.read_back
                    checksum = verification.verify_published(caps_dst.ordered_writes)
            except BaseException as exc:
                self._fail(exc)
                raise
        elapsed = time.monotonic() - self.started
        if self.record.entry is not None:
            self.record.finish(TransferState.DONE, checksum=checksum or "", destination=destination_record(self.dst))
        sent = pump.bytes_sent
        emit(Done(self.size, sent, resumed.total(), elapsed, self.options.checksum, checksum))
        return self._result(sent, checksum, elapsed, markers.marker, opening)

    def _result(
        self, sent: int, checksum: str | None, elapsed: float, marker: RangeSet, opening: Opening
    ) -> TransferResult:
        return TransferResult(
            transfer_id=self.record.id,
            source=self.src_url,
            destination=self.dst_url,
            size=self.size,
            bytes_sent=sent,
            bytes_resumed=opening.resumed.total(),
            marker=marker,
            checksum_algorithm=self.options.checksum,
            checksum=checksum,
            elapsed=elapsed,
            restart_reason=opening.restart_reason,
        )

    def _up_to_date(self) -> TransferResult:
        entry = self.record.entry
        assert entry is not None
        marker = RangeSet.span(0, self.size) if self.size else RangeSet()
        checksum = entry.checksum or None
        self.t._emit(UpToDate(self.size, entry.updated, entry.checksum_algorithm or None, checksum))
        return TransferResult(
            transfer_id=entry.id,
            source=self.src_url,
            destination=self.dst_url,
            size=self.size,
            bytes_sent=0,
            bytes_resumed=0,
            marker=marker,
            checksum_algorithm=entry.checksum_algorithm or None,
            checksum=checksum,
            elapsed=time.monotonic() - self.started,
            restart_reason=None,
            up_to_date=True,
        )

    # -- opening -------------------------------------------------------------------

    def _stat_source(self) -> ObjectInfo:
        try:
            info = self.src.driver.stat(self.src.path)
        except NotFound as exc:
            raise NotFound(
                f"source {self.src_url} does not exist",
                hint="check the source path",
            ) from exc
        if info.is_dir:
            raise IsADirectory(
                f"source {self.src_url} is a directory",
                hint="give the path of a file; copying directories is not supported",
            )
        return info

    def _announce(self, block_size: int, note: str | None = None) -> None:
        assert self.opening is not None
        resumed = self.opening.resumed
        self.t._emit(
            Started(
                self.record.id,
                self.src_url,
                self.dst_url,
                self.size,
                self.options.streams,
                block_size,
                self.options.checksum,
            )
        )
        if resumed:
            self.t._emit(Resumed(resumed, resumed.total(), self.size, note or ""))
        elif self.opening.restart_reason:
            self.t._emit(Restarted(self.opening.restart_reason))

    # -- the end -------------------------------------------------------------------

    def _publish(self, writer: Writer) -> None:
        writer.complete()
        self.published = True

    def _fail(self, exc: BaseException) -> None:
        opening = self.opening
        clean_up(
            exc,
            dst=self.dst,
            writer=opening.writer if opening is not None else None,
            published=self.published,
            pump=self.pump,
            verification=self.verification,
            markers=self.markers,
            durable=opening.resumed if opening is not None else RangeSet(),
            record=self.record,
            emit=self.t._emit,
        )
