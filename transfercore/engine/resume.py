"""Deciding what a run may resume from, before the destination has its say.

The journal's marker is only a claim: after this decision the destination
driver checks it against the storage (``Driver.open_write(resume=...)``) and
may still reject it.  Whenever a partial transfer exists but is not used, the
decision carries a one-line reason for the user.
"""

from __future__ import annotations

import attrs

from ..capabilities import Capabilities, RestartModel
from ..journal import JournalEntry, SourceIdentity, State
from ..ranges import RangeSet


@attrs.frozen
class ResumeDecision:
    #: The marker to present to the destination; empty for a fresh start.
    marker: RangeSet
    #: Why an existing partial transfer is not resumed (None otherwise).
    reason: str | None = None


def decide(
    entry: JournalEntry | None,
    identity: SourceIdentity,
    capabilities: Capabilities,
    *,
    allow: bool = True,
) -> ResumeDecision:
    if entry is None or entry.state is State.DONE or not entry.marker:
        return ResumeDecision(RangeSet())
    if not allow:
        return ResumeDecision(RangeSet(), "resume was turned off (--no-resume)")
    if entry.state is State.MISMATCH:
        return ResumeDecision(RangeSet(), "the previous run ended with a checksum mismatch")
    changes = entry.source_identity.differences(identity)
    if changes:
        return ResumeDecision(
            RangeSet(), f"the source changed since the interrupted run ({', '.join(changes)})"
        )
    if capabilities.restart is RestartModel.NONE:
        return ResumeDecision(RangeSet(), "the destination cannot resume a partial object (restart model none)")
    marker = entry.marker.clip(identity.size)
    if capabilities.restart is RestartModel.PREFIX:
        marker = marker.prefix()
        if not marker:
            return ResumeDecision(
                RangeSet(), "the destination resumes only a contiguous prefix, and the marker has none"
            )
    return ResumeDecision(marker)
