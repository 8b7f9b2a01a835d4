"""Every clause of the contract, in the order reports list them."""

from __future__ import annotations

from .checks import basics, batch, crash, leftovers, markers, publish, rangewriters, readback, reads, syscalls
from .clause import Clause

CLAUSES: tuple[Clause, ...] = (
    basics.CLAUSES[0],  # round-trip
    *markers.CLAUSES,
    *crash.CLAUSES,
    *syscalls.CLAUSES,
    *leftovers.CLAUSES,
    *publish.CLAUSES,
    *rangewriters.CLAUSES,
    *batch.CLAUSES,
    *reads.CLAUSES,
    *readback.CLAUSES,
    *basics.CLAUSES[1:],
)


def by_name(name: str) -> Clause:
    for clause in CLAUSES:
        if clause.name == name:
            return clause
    from transfercore.errors import TransferCoreError

    raise TransferCoreError(
        f"no conformance clause named {name!r}", hint=f"choose from {', '.join(c.name for c in CLAUSES)}"
    )
