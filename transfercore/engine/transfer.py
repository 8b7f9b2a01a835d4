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
checksum or by reading the published object), and a mismatch then removes it.
"""

from __future__ import annotations

import collections
import os
import threading
import time

import attrs

from ..capabilities import Capabilities, RestartModel
from ..checksums import Hasher, checksum_reader
from ..contract import ObjectInfo, Reader, Writer
from ..errors import (
    RESUME_HINT,
    ChecksumMismatch,
    IsADirectory,
    LocationError,
    NotFound,
    RestartRejected,
    SourceChanged,
    StorageError,
    TransferAborted,
    TransferCoreError,
)
from ..journal import Journal, JournalEntry, SourceIdentity, State
from ..location import Location
from ..markers import MarkerCursor
from ..ranges import RangeSet
from ..registry import Endpoint, open_location
from .events import (
    Done,
    Event,
    Failed,
    Interrupted,
    Listener,
    Listeners,
    Marker,
    Progress,
    Restarted,
    Resumed,
    Started,
    UpToDate,
    Verifying,
    VerifyProgress,
)
from .identity import changes_during, source_identity, stat_changes
from .options import TransferOptions
from .policy import MarkerPolicy
from .pump import Pump
from .resume import ResumeDecision, decide, may_consult_record, prefer_record
from .scheduler import plan_blocks
from .verify import DurableVerifier

Where = str | Location | Endpoint

#: Seconds of history behind the rate shown in progress events.
RATE_WINDOW = 5.0
#: Markers taken without progress after the final one before a short final marker is an error.
FINAL_MARKER_TRIES = 3


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
    """The state of one run (kept off :class:`Transfer` so a run cannot leak into another)."""

    def __init__(self, transfer: Transfer, src: Endpoint, dst: Endpoint) -> None:
        self.t = transfer
        self.options = transfer.options
        self.journal = transfer.journal
        self.src = src
        self.dst = dst
        # The journal keys a transfer by the objects, not by how they are
        # opened: a run with other driver options resumes the same object
        # (the destination driver still checks the marker).
        self.src_url = _object_url(src)
        self.dst_url = _object_url(dst)
        self.started = time.monotonic()
        self._entry: JournalEntry | None = None
        self.writer: Writer | None = None
        self.pump: Pump | None = None
        self.verifier: DurableVerifier | None = None
        self.published = False
        self.marker = RangeSet()
        self.cursor: MarkerCursor | None = None
        self.resumed = RangeSet()
        self.size = 0
        self.restart_reason: str | None = None
        self.source_info: ObjectInfo | None = None

    @property
    def entry(self) -> JournalEntry | None:
        return self._entry

    @entry.setter
    def entry(self, value: JournalEntry | None) -> None:
        self._entry = value
        self.t.transfer_id = value.id if value is not None else None

    # -- the whole run -------------------------------------------------------------

    def execute(self) -> TransferResult:
        if _same_object(self.src, self.dst):
            raise LocationError(
                f"source and destination are the same object ({self.src_url})",
                hint="give a different destination path",
            )
        info = self._stat_source()
        lock = self.journal.claim(self.src_url, self.dst_url) if self.journal is not None else None
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
        with self.src.driver.open_read(self.src.path) as reader:
            self.size = info.size
            if reader.size != info.size:
                raise SourceChanged(
                    f"source {self.src_url} changed while opening it (size {info.size} -> {reader.size})",
                    hint="copy it again once the source is stable",
                )
            identity = source_identity(info, reader)
            self.source_info = info
            decision = self._decide(identity, caps_dst)
            if decision.up_to_date:
                return self._up_to_date()
            try:
                self._open_writer(decision, identity)
                assert self.writer is not None
                self._announce(block_size, decision.note)
                policy = self.options.marker_policy
                if caps_dst.restart is RestartModel.NONE:
                    policy = MarkerPolicy.none()
                hasher = Hasher(self.options.checksum) if self.options.checksum else None
                blocks = plan_blocks(self.size, self.resumed, block_size, include_have=hasher is not None)
                self.pump = Pump(
                    reader,
                    self.writer,
                    blocks,
                    streams=self.options.streams,
                    max_writers=caps_dst.max_writers,
                    ordered_reads=caps_src.ordered_writes,
                    ordered_writes=caps_dst.ordered_writes,
                    hasher=hasher,
                    wake=self.t._wake,
                )
                self.verifier = self._start_verifier(hasher, block_size, caps_dst)
                self._move(policy)
                if caps_dst.restart is not RestartModel.NONE:
                    self._take_marker(final=True)
                if self.verifier is not None:
                    # Verified before publishing: a mismatch never appears under the final name.
                    assert hasher is not None
                    self._wait_all_durable()
                    checksum = self._finish_verifier(hasher)
                # Last look at the source before the name appears: a change
                # during the copy means the object mixes two versions.
                self._check_source_unchanged(info, identity, reader)
                self._publish()
                if self.verifier is None and hasher is not None:
                    # Only a destination that cannot read back before publishing
                    # gets here (see _start_verifier): it is verified once named.
                    assert not caps_dst.read_back
                    checksum = self._verify(hasher, block_size, caps_dst.checksums, caps_dst.ordered_writes)
            except BaseException as exc:
                self._fail(exc)
                raise
        elapsed = time.monotonic() - self.started
        if self.entry is not None and self.journal is not None:
            self.journal.finish(
                self.entry.id, State.DONE, checksum=checksum or "", destination=self._destination_record()
            )
        sent = self.pump.bytes_sent
        self.t._emit(
            Done(self.size, sent, self.resumed.total(), elapsed, self.options.checksum, checksum)
        )
        return self._result(sent, checksum, elapsed)

    def _result(self, sent: int, checksum: str | None, elapsed: float) -> TransferResult:
        return TransferResult(
            transfer_id=self.entry.id if self.entry else None,
            source=self.src_url,
            destination=self.dst_url,
            size=self.size,
            bytes_sent=sent,
            bytes_resumed=self.resumed.total(),
            marker=self.marker,
            checksum_algorithm=self.options.checksum,
            checksum=checksum,
            elapsed=elapsed,
            restart_reason=self.restart_reason,
        )

    def _decide(self, identity: SourceIdentity, caps: Capabilities) -> ResumeDecision:
        found = self.journal.find(self.src_url, self.dst_url) if self.journal else None
        destination = None
        if found is not None and found.state is State.DONE:
            try:
                destination = self.dst.driver.stat(self.dst.path)
            except NotFound:
                destination = None
        decision = decide(
            found, identity, caps, allow=self.options.resume, destination=destination, force=self.options.force
        )
        if self.journal is not None and self.options.resume and caps.restart is not RestartModel.NONE:
            decision = self._ask_destination(found, identity, caps, decision)
        if decision.up_to_date:
            assert found is not None
            self.entry = found
        return decision

    def _ask_destination(
        self, found: JournalEntry | None, identity: SourceIdentity, caps: Capabilities, decision: ResumeDecision
    ) -> ResumeDecision:
        if not may_consult_record(found, identity):
            return decision
        try:
            record = self.dst.driver.partial(self.dst.path)
        except TransferCoreError:
            return decision
        return prefer_record(found, record, identity.size, caps, decision, checksum=self.options.checksum is not None)

    def _up_to_date(self) -> TransferResult:
        assert self.entry is not None
        entry = self.entry
        self.marker = RangeSet.span(0, self.size) if self.size else RangeSet()
        checksum = entry.checksum or None
        self.t._emit(UpToDate(self.size, entry.updated, entry.checksum_algorithm or None, checksum))
        return TransferResult(
            transfer_id=entry.id,
            source=self.src_url,
            destination=self.dst_url,
            size=self.size,
            bytes_sent=0,
            bytes_resumed=0,
            marker=self.marker,
            checksum_algorithm=entry.checksum_algorithm or None,
            checksum=checksum,
            elapsed=time.monotonic() - self.started,
            restart_reason=None,
            up_to_date=True,
        )

    def _destination_record(self) -> tuple[int, int, str] | None:
        try:
            info = self.dst.driver.stat(self.dst.path)
        except TransferCoreError:
            return None
        return (info.size, info.mtime_ns, info.identity)

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

    def _open_writer(self, decision: ResumeDecision, identity: SourceIdentity) -> None:
        self.restart_reason = decision.reason
        # The destination as opened (driver options included), so that `status
        # --discard` reaches the same storage; rows are keyed without them.
        options = self.options.to_dict() | {"destination_url": str(self.dst.location)}
        if decision.marker:
            try:
                self.writer = self.dst.driver.open_write(self.dst.path, self.size, resume=decision.marker)
            except RestartRejected as exc:
                self.restart_reason = f"the destination rejected the restart marker: {exc.args[0]}"
            else:
                self.resumed = self.writer.resumed
                if not decision.marker.contains(self.resumed):
                    self.writer.abort()
                    raise TransferCoreError(
                        f"destination driver {self.dst.location.driver!r} resumed ranges {self.resumed} "
                        f"that were not in the marker {decision.marker}",
                        hint="this is a bug in the driver; copy with resume turned off meanwhile",
                    )
                if self.journal:
                    self.entry = self.journal.begin(
                        self.src_url, self.dst_url, identity, options,
                        marker=self.resumed, checksum_algorithm=self.options.checksum or "",
                    )
        if self.writer is None:
            # The journal forgets the old marker before the driver discards the
            # partial object, so a crash in between never leaves a stale claim.
            if self.journal:
                self.entry = self.journal.begin(
                    self.src_url, self.dst_url, identity, options,
                    checksum_algorithm=self.options.checksum or "",
                )
            self.writer = self.dst.driver.open_write(self.dst.path, self.size, resume=None)
            self.resumed = RangeSet()
        if self.writer.size != self.size:
            raise TransferCoreError(
                f"destination writer has size {self.writer.size}, expected {self.size}",
                hint="this is a bug in the destination driver",
            )
        self.marker = self.resumed
        self.cursor = MarkerCursor(self.resumed)

    def _announce(self, block_size: int, note: str | None = None) -> None:
        self.t._emit(
            Started(
                self.entry.id if self.entry else None,
                self.src_url,
                self.dst_url,
                self.size,
                self.options.streams,
                block_size,
                self.options.checksum,
            )
        )
        if self.resumed:
            self.t._emit(Resumed(self.resumed, self.resumed.total(), self.size, note or ""))
        elif self.restart_reason:
            self.t._emit(Restarted(self.restart_reason))

    def _publish(self) -> None:
        assert self.writer is not None
        self.writer.complete()
        self.published = True

    def _start_verifier(self, hasher: Hasher | None, block_size: int, caps) -> DurableVerifier | None:  # type: ignore[no-untyped-def]
        """A background read-back of the durable prefix, when the destination allows one."""
        assert self.writer is not None
        # A destination that can read back is always verified this way, even
        # when the storage computes the algorithm itself: its checksum is of
        # a complete object, which exists only once published.  Capabilities
        # refuse read_back without markers, so the read-back has bytes to read.
        if hasher is None or not caps.read_back:
            return None
        verifier = DurableVerifier(self.writer.read_durable, self.size, hasher.algorithm, block_size, wake=self.t._wake)
        verifier.advance(self.resumed.prefix_end())
        verifier.start()
        return verifier

    # -- moving bytes ----------------------------------------------------------------

    def _move(self, policy: MarkerPolicy) -> None:
        assert self.pump is not None
        pump = self.pump
        wake = self.t._wake
        interval = self.options.progress_interval
        assert self.cursor is not None
        cursor = self.cursor
        cursor.policy = policy
        cursor.mark_taken(time.monotonic(), 0)
        last_marker_bytes = 0
        # policy.bytes bounds the bytes not yet under a recorded marker: a
        # marker is taken when half of it is unmarked, while the streams go on
        # writing the other half (the flush overlaps the writes), and streams
        # wait only when all of it is unmarked.  A crash therefore never loses
        # more than policy.bytes plus the blocks in flight.
        step = None if policy.bytes is None else max(1, policy.bytes // 2)
        pump.wake_at = step
        pump.hold(policy.bytes)
        samples: collections.deque[tuple[float, int]] = collections.deque()
        next_progress = time.monotonic() + interval
        pump.start()
        while not pump.finished:
            now = time.monotonic()
            timeout = next_progress - now
            until_marker = cursor.seconds_until_due(now)
            if until_marker is not None:
                timeout = min(timeout, until_marker + 0.001)
            wake.wait(max(0.0, timeout))
            wake.clear()
            if self.t._cancel.is_set():
                raise TransferAborted("the transfer was cancelled", hint=RESUME_HINT)
            if pump.error is not None:
                break
            if self.verifier is not None and self.verifier.error is not None:
                pump.stop()
                break
            now = time.monotonic()
            sent = pump.bytes_sent
            due_by_bytes = step is not None and sent - last_marker_bytes >= step
            if due_by_bytes or cursor.due(now, sent):
                self._take_marker()
                self._watch_source()
                cursor.mark_taken(time.monotonic(), sent)
                last_marker_bytes = sent
                if step is not None and policy.bytes is not None:
                    pump.wake_at = sent + step
                    pump.hold(sent + policy.bytes)
            if now >= next_progress:
                self._progress(samples, now)
                next_progress = now + interval
        pump.join()
        if pump.error is not None:
            raise pump.error
        if self.verifier is not None and self.verifier.error is not None:
            raise self.verifier.error
        if self.t._cancel.is_set():
            raise TransferAborted("the transfer was cancelled", hint=RESUME_HINT)
        self._progress(samples, time.monotonic())

    def _progress(self, samples: collections.deque[tuple[float, int]], now: float) -> None:
        assert self.pump is not None
        sent = self.pump.bytes_sent
        samples.append((now, sent))
        while len(samples) > 2 and now - samples[0][0] > RATE_WINDOW:
            samples.popleft()
        t0, b0 = samples[0]
        elapsed = now - self.started
        rate = (sent - b0) / (now - t0) if now > t0 else (sent / elapsed if elapsed > 0 else 0.0)
        done = self.resumed.total() + sent
        eta = (self.size - done) / rate if rate > 0 else None
        self.t._emit(Progress(sent, done, self.size, self.marker.total(), elapsed, rate, eta))

    def _take_marker(self, *, final: bool = False) -> None:
        assert self.writer is not None and self.pump is not None and self.cursor is not None
        pump = self.pump
        new = self.cursor.take(self.writer, written=lambda: self.resumed | pump.written())
        marker = self.cursor.durable
        self.marker = marker
        if new and self.entry is not None and self.journal is not None:
            self.journal.record_marker(self.entry.id, marker)
        if new or final:
            self.t._emit(Marker(marker, marker.total(), self.size, final))
        if self.verifier is not None:
            self.verifier.advance(marker.prefix_end())

    # -- the end -------------------------------------------------------------------

    def _check_source_unchanged(self, before: ObjectInfo, identity: SourceIdentity, reader: Reader) -> None:
        try:
            after: ObjectInfo | None = self.src.driver.stat(self.src.path)
        except NotFound:
            after = None
        what = changes_during(before, after, identity, reader)
        if what:
            raise SourceChanged(self._changed_message(", ".join(what)))

    def _watch_source(self) -> None:
        """A stat of the source at each marker: a change stops the copy early
        instead of after the last byte (the samples are read only at the end)."""
        assert self.source_info is not None
        before = self.source_info
        try:
            after: ObjectInfo | None = self.src.driver.stat(self.src.path)
        except NotFound:
            after = None
        what = stat_changes(before, after)
        if what:
            raise SourceChanged(self._changed_message(", ".join(what)))

    def _changed_message(self, what: str) -> str:
        return (
            f"source {self.src_url} changed during the transfer ({what}): nothing was published and the "
            "partial copy was discarded; copy it again to get the new version"
        )

    def _wait_all_durable(self) -> None:
        """The read-back reads only marked bytes, so every byte must be durable before
        it can finish.  A storage that failed after accepting the last write (HPSS PIO
        fails in a later Execute) leaves the final marker short: that is the failure to
        report, not a wait for bytes that will never come."""
        whole = RangeSet.span(0, self.size) if self.size else RangeSet()
        idle = 0
        while not self.marker.contains(whole):
            if idle >= FINAL_MARKER_TRIES or self.t._cancel.is_set():
                raise StorageError(
                    f"the destination made only {self.marker.total()} of {self.size} bytes durable after it "
                    "accepted every byte, so the object cannot be verified or published",
                    hint="nothing was published; run the same command again to resume from the durable part",
                )
            before = self.marker
            self._take_marker()
            idle = idle + 1 if self.marker == before else 0

    def _finish_verifier(self, hasher: Hasher) -> str:
        assert self.verifier is not None
        source_sum = self._source_sum(hasher)
        self.t._emit(Verifying(hasher.algorithm, "read-back"))
        verifier = self.verifier
        began = time.monotonic()
        while not verifier.wait(self.options.progress_interval):
            self.t._emit(VerifyProgress(verifier.verified, self.size, time.monotonic() - began))
            if self.t._cancel.is_set():
                raise TransferAborted("the transfer was cancelled", hint=RESUME_HINT)
        dest_sum = verifier.finish()
        self.t._emit(VerifyProgress(verifier.verified, self.size, time.monotonic() - began))
        self._compare(hasher.algorithm, source_sum, dest_sum)
        return source_sum

    def _source_sum(self, hasher: Hasher) -> str:
        if hasher.count != self.size:
            raise TransferCoreError(
                f"the source checksum covered {hasher.count} of {self.size} bytes",
                hint="this is a bug in the engine; the object was written but not verified",
            )
        return hasher.hexdigest()

    def _compare(self, algorithm: str, source_sum: str, dest_sum: str) -> None:
        if dest_sum.lower() == source_sum:
            return
        if not self.published and self.dst.driver.capabilities().atomic_publish:
            hint = (
                "nothing was published; the partial object was kept for inspection, and copying it again "
                "sends the object in full"
            )
        elif not self.published:
            hint = self._remove_in_place_partial()
        else:
            # Only drivers that cannot read back before publishing get here.
            try:
                self.dst.driver.remove(self.dst.path)
            except TransferCoreError as exc:
                hint = (
                    f"the destination could not be verified before publishing and could not be removed ({exc}); "
                    "it is WRONG: remove it, then copy it again to send it in full"
                )
            else:
                hint = (
                    "the destination could not be verified before publishing, so it was removed; copying it "
                    "again sends the object in full"
                )
        raise ChecksumMismatch(algorithm.upper(), source_sum, dest_sum.lower(), hint=hint)

    def _remove_in_place_partial(self) -> str:
        """A destination without atomic publish writes under the final name: a
        partial that failed verification must not stay there looking complete."""
        assert self.writer is not None
        try:
            self.writer.abort()
            self.dst.driver.discard_partial(self.dst.path)
            self.dst.driver.remove(self.dst.path)
        except TransferCoreError as exc:
            return (
                "verification failed before completing the object, but this destination writes under the "
                f"final name and the partial object could not be removed ({exc}): it is WRONG; remove it, "
                "then run the same command again to send it in full"
            )
        return (
            "nothing was published; this destination writes under the final name, so the partial object "
            "was removed, and running the same command again sends the object in full"
        )

    def _verify(self, hasher: Hasher | None, block_size: int, storage_sums: frozenset[str], ordered: bool) -> str | None:
        if hasher is None:
            return None
        assert self.pump is not None
        algorithm = hasher.algorithm
        source_sum = self._source_sum(hasher)
        self.t._emit(Verifying(algorithm, "storage" if algorithm in storage_sums else "read-back"))
        dest_sum = self.dst.driver.checksum(self.dst.path, algorithm)
        if dest_sum is None:
            began = time.monotonic()
            last = [began]
            done = [0]

            def progress(length: int) -> None:  # called with each block's length
                done[0] += length
                now = time.monotonic()
                if now - last[0] >= self.options.progress_interval:
                    last[0] = now
                    self.t._emit(VerifyProgress(done[0], self.size, now - began))

            with self.dst.driver.open_read(self.dst.path) as reader:
                dest_sum = checksum_reader(
                    reader,
                    algorithm,
                    block_size=block_size,
                    parallel=1 if ordered else min(2, self.options.streams),
                    on_progress=progress,
                    stop=self.t._cancel,
                )
        self._compare(algorithm, source_sum, dest_sum)
        return source_sum

    def _fail(self, exc: BaseException) -> None:
        """Stop the streams, save what is durable (or discard it), and record how the run ended."""
        if self.pump is not None:
            self.pump.stop()
            self.pump.join()
        if self.verifier is not None:
            self.verifier.stop()
            self.verifier.join()
            self.verifier = None
        mismatch = isinstance(exc, ChecksumMismatch)
        # A partial that mixes two versions of the source is worth nothing.
        discard = isinstance(exc, SourceChanged)
        if self.writer is not None:
            if not (mismatch or discard):
                try:
                    if self.dst.driver.capabilities().restart is not RestartModel.NONE:
                        self._take_marker()
                except BaseException:  # noqa: BLE001 - the first error is the one to report
                    pass
            if not self.published:
                # After a mismatch found before publishing, abort keeps the
                # partial object for inspection; the journal's state makes the
                # next run start from zero.
                try:
                    self.writer.abort()
                except BaseException:  # noqa: BLE001
                    pass
            if discard:
                self.marker = RangeSet()
                try:
                    self.dst.driver.discard_partial(self.dst.path)
                except BaseException:  # noqa: BLE001
                    pass
        interrupted = isinstance(exc, (KeyboardInterrupt, TransferAborted))
        if interrupted:
            state = State.INTERRUPTED
        elif mismatch:
            state = State.MISMATCH
        else:
            state = State.FAILED
        message = str(exc) or type(exc).__name__
        if self.entry is not None and self.journal is not None:
            try:
                if discard:
                    self.journal.record_marker(self.entry.id, RangeSet())
                self.journal.finish(self.entry.id, state, message=message)
            except BaseException:  # noqa: BLE001
                pass
        try:
            text = exc.args[0] if isinstance(exc, TransferCoreError) and exc.args else message
            if interrupted:
                self.t._emit(Interrupted(message=text, durable_bytes=self.marker.total()))
            else:
                self.t._emit(
                    Failed(
                        error=type(exc).__name__,
                        message=text,
                        hint=getattr(exc, "hint", "") or "",
                        durable_bytes=self.marker.total(),
                        resumable=not (mismatch or discard),
                    )
                )
        except BaseException:  # noqa: BLE001 - a failing listener must not hide the error
            pass
