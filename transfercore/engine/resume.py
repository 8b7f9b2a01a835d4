"""Deciding what a run may resume from, before the destination has its say.

The journal's marker is only a claim: after this decision the destination
driver checks it against the storage (``Driver.open_write(resume=...)``) and
may still reject it.  Whenever a partial transfer exists but is not used, the
decision carries a one-line reason for the user.
"""

from __future__ import annotations

import attrs

from ..capabilities import Capabilities, RestartModel
from ..contract import ObjectInfo
from ..journal import JournalEntry, SourceIdentity, TransferState
from ..ranges import RangeSet


@attrs.frozen
class ResumeDecision:
    #: The marker to present to the destination; empty for a fresh start.
    marker: RangeSet
    #: Why an existing partial (or finished) transfer is not used (None otherwise).
    reason: str | None = None
    #: The copy finished earlier and the destination still matches: nothing to do.
    up_to_date: bool = False
    #: Where the marker came from, when not from the journal (shown to the user).
    note: str | None = None


def _state_words(entry: JournalEntry) -> str:
    return {
        TransferState.RUNNING: "was stopped",
        TransferState.INTERRUPTED: "was interrupted",
        TransferState.FAILED: "failed",
        TransferState.MISMATCH: "ended with a checksum mismatch",
        TransferState.DONE: "finished",
    }[entry.state]


def _shape(marker: RangeSet, size: int, capabilities: Capabilities) -> tuple[RangeSet, str | None]:
    marker = marker.clip(size)
    if capabilities.restart is RestartModel.PREFIX:
        marker = marker.prefix()
        if not marker:
            return marker, "the destination resumes only a contiguous prefix, and the marker has none"
    return marker, None


def decide(
    entry: JournalEntry | None,
    identity: SourceIdentity,
    capabilities: Capabilities,
    *,
    allow: bool = True,
    destination: ObjectInfo | None = None,
    force: bool = False,
) -> ResumeDecision:
    """What to do with the journal's ``entry`` for this source and destination.

    ``destination`` is the object now under the final name (None when there
    is none); a finished copy whose source and destination both still match
    the record is up to date unless ``force``.
    """
    if entry is None:
        return ResumeDecision(RangeSet())
    changes = entry.source_identity.differences(identity)
    if entry.state is TransferState.DONE:
        if changes:
            return ResumeDecision(RangeSet(), f"the source changed since the finished copy ({', '.join(changes)})")
        if destination is None:
            return ResumeDecision(RangeSet(), "the finished copy is no longer at the destination")
        if (destination.size, destination.mtime_ns, destination.identity) != (
            entry.destination_size,
            entry.destination_mtime_ns,
            entry.destination_identity,
        ):
            return ResumeDecision(RangeSet(), "the destination changed since the finished copy")
        if force:
            return ResumeDecision(RangeSet(), "--force: copying again though the finished copy still matches")
        return ResumeDecision(RangeSet(), up_to_date=True)
    if not allow:
        return ResumeDecision(RangeSet(), "resume was turned off (--no-resume)")
    if entry.state is TransferState.MISMATCH:
        return ResumeDecision(RangeSet(), "the previous run ended with a checksum mismatch")
    if changes:
        return ResumeDecision(
            RangeSet(), f"the source changed since the previous run ({', '.join(changes)})"
        )
    if capabilities.restart is RestartModel.NONE:
        return ResumeDecision(RangeSet(), "the destination cannot resume a partial object (restart model none)")
    if not entry.marker:
        why = f": {entry.message}" if entry.message else ""
        return ResumeDecision(RangeSet(), f"the previous run {_state_words(entry)} before any byte was durable{why}")
    marker, reason = _shape(entry.marker, identity.size, capabilities)
    return ResumeDecision(marker, reason)


def from_destination(
    record: RangeSet,
    size: int,
    capabilities: Capabilities,
    *,
    verified: bool,
    allow: bool = True,
    why: str = "the journal has no record of this copy",
) -> ResumeDecision:
    """What to do with a partial the destination's own resume record holds
    when the journal has no row for it, or a smaller marker (a lost or damaged
    journal).  ``verified``: the whole object will be checked against the
    source, or the journal vouches that the source is the one the partial came from."""
    if not record or not allow or capabilities.restart is RestartModel.NONE:
        return ResumeDecision(RangeSet())
    if not verified:
        return ResumeDecision(
            RangeSet(),
            f"the destination holds a durable partial ({record.total()} bytes) the journal has no record of, "
            "and without a checksum a partial from another source could not be told apart",
        )
    marker, reason = _shape(record, size, capabilities)
    if reason:
        return ResumeDecision(RangeSet(), reason)
    return ResumeDecision(
        marker,
        note=f"{why}; resuming the {marker.total()} bytes the destination's own resume record holds",
    )


def may_consult_record(found: JournalEntry | None, identity: SourceIdentity) -> bool:
    """Whether the destination's own resume record may stand in for the journal's
    marker: with no row, or a resumable row of this very source."""
    return found is None or (
        found.state in (TransferState.RUNNING, TransferState.INTERRUPTED, TransferState.FAILED) and not found.source_identity.differences(identity)
    )


def prefer_record(
    found: JournalEntry | None,
    record: RangeSet,
    size: int,
    capabilities: Capabilities,
    decision: ResumeDecision,
    *,
    checksum: bool,
) -> ResumeDecision:
    """The destination's record is the truth about what it holds durably: resume
    it instead of the journal's decision when it holds more (a lost or damaged
    journal, or a marker the journal could not record)."""
    if not record or record == decision.marker or not record.contains(decision.marker):
        return decision
    if found is None:
        why = "the journal has no record of this copy"
    else:
        why = f"the journal's marker ({decision.marker.total()} bytes) is behind the destination's record"
    better = from_destination(record, size, capabilities, verified=found is not None or checksum, why=why)
    return better if better.marker or found is None else decision
