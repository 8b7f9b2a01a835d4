"""What a run resumes, and opening the destination's writer on that decision.

:mod:`.resume` decides from the journal's row alone; here the destination
has its say: a finished copy is looked at under its final name, the
driver's own resume record may stand in for a lost journal, and
``Driver.open_write(resume=...)`` may still reject the marker.
"""

from __future__ import annotations

from ..capabilities import Capabilities, RestartModel
from ..contract import Writer
from ..errors import NotFound, RestartRejected, TransferCoreError
from ..journal import JournalEntry, SourceIdentity, TransferState
from ..ranges import RangeSet
from ..registry import Endpoint
from .options import TransferOptions
from .record import RunRecord
from .resume import ResumeDecision, decide, may_consult_record, prefer_record


class Opening:
    """Decides what to resume and opens the writer of ``size`` bytes at ``dst``.

    What it opened stays on it (``writer``) when opening fails part-way, so
    that the clean-up can abort it; ``resumed`` is set once the writer is open.
    """

    def __init__(self, dst: Endpoint, size: int, options: TransferOptions, record: RunRecord) -> None:
        self._dst = dst
        self._size = size
        self._options = options
        self._record = record
        self.writer: Writer | None = None
        #: The ranges the destination kept and the run does not send again.
        self.resumed = RangeSet()
        #: Why a partial transfer was not resumed (None when it was, or there was none).
        self.restart_reason: str | None = None

    def decide(self, identity: SourceIdentity, caps: Capabilities) -> ResumeDecision:
        """The decision; an up-to-date copy makes its journal row this run's."""
        found = self._record.find()
        destination = None
        if found is not None and found.state is TransferState.DONE:
            try:
                destination = self._dst.driver.stat(self._dst.path)
            except NotFound:
                destination = None
        options = self._options
        decision = decide(found, identity, caps, allow=options.resume, destination=destination, force=options.force)
        if self._record.journal is not None and options.resume and caps.restart is not RestartModel.NONE:
            decision = self._ask_destination(found, identity, caps, decision)
        if decision.up_to_date:
            assert found is not None
            self._record.entry = found
        return decision

    def _ask_destination(
        self, found: JournalEntry | None, identity: SourceIdentity, caps: Capabilities, decision: ResumeDecision
    ) -> ResumeDecision:
        if not may_consult_record(found, identity):
            return decision
        try:
            record = self._dst.driver.partial(self._dst.path)
        except TransferCoreError:
            return decision
        return prefer_record(found, record, identity.size, caps, decision, checksum=self._options.checksum is not None)

    def open_writer(self, decision: ResumeDecision, identity: SourceIdentity) -> Writer:
        """Open the writer (resuming when the destination accepts the marker) and begin the journal row."""
        dst = self._dst
        self.restart_reason = decision.reason
        # The destination as opened (driver options included), so that `status
        # --discard` reaches the same storage; rows are keyed without them.
        options = self._options.to_dict() | {"destination_url": str(dst.location)}
        checksum_algorithm = self._options.checksum or ""
        resumed = RangeSet()
        if decision.marker:
            try:
                self.writer = dst.driver.open_write(dst.path, self._size, resume=decision.marker)
            except RestartRejected as exc:
                self.restart_reason = f"the destination rejected the restart marker: {exc.args[0]}"
            else:
                resumed = self.writer.resumed
                if not decision.marker.contains(resumed):
                    self.writer.abort()
                    raise TransferCoreError(
                        f"destination driver {dst.location.driver!r} resumed ranges {resumed} "
                        f"that were not in the marker {decision.marker}",
                        hint="this is a bug in the driver; copy with resume turned off meanwhile",
                    )
                self._record.begin(identity, options, marker=resumed, checksum_algorithm=checksum_algorithm)
        if self.writer is None:
            # The journal forgets the old marker before the driver discards the
            # partial object, so a crash in between never leaves a stale claim.
            self._record.begin(identity, options, checksum_algorithm=checksum_algorithm)
            self.writer = dst.driver.open_write(dst.path, self._size, resume=None)
            resumed = RangeSet()
        if self.writer.size != self._size:
            raise TransferCoreError(
                f"destination writer has size {self.writer.size}, expected {self._size}",
                hint="this is a bug in the destination driver",
            )
        self.resumed = resumed
        return self.writer


def destination_record(dst: Endpoint) -> tuple[int, int, str] | None:
    """The published object's ``(size, mtime_ns, identity)``, for the journal: a later
    run sees from it whether the finished copy is still there (None when it cannot tell)."""
    try:
        info = dst.driver.stat(dst.path)
    except TransferCoreError:
        return None
    return (info.size, info.mtime_ns, info.identity)
