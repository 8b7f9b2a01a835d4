"""Contract clauses as data: what each one checks and when it applies.

A :class:`Clause` opts out of a driver only through :attr:`Clause.applies`,
which sees nothing but the declared :class:`~transfercore.capabilities.Capabilities`
(and the driver's own description).  A check that cannot run fails with its
evidence; it never skips.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from .subject import Subject


class Outcome(enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    #: A declared capability makes the clause meaningless for this driver.
    NOT_APPLICABLE = "n/a"
    #: Switched off explicitly by the person running the kit (never automatic).
    DISABLED = "disabled"
    #: The clause applies but this machine lacks what it needs (the evidence says what to
    #: install).  Never a pass: the command exits with its own code.
    NOT_RUN = "not run"


@attrs.frozen
class Verdict:
    """What a check found."""

    outcome: Outcome
    evidence: str = ""

    @classmethod
    def passed(cls, evidence: str = "") -> Verdict:
        return cls(Outcome.PASS, evidence)

    @classmethod
    def failed(cls, evidence: str) -> Verdict:
        return cls(Outcome.FAIL, evidence)


class Violation(AssertionError):
    """Raised inside a check to fail its clause with evidence."""


class Disabled(Exception):
    """Raised inside a check that the person running the kit switched off."""


class NotRun(Exception):
    """Raised inside a check that cannot run on this machine; the message says what to install."""


def require(condition: bool, evidence: str) -> None:
    """Fail the running clause with ``evidence`` unless ``condition`` holds."""
    if not condition:
        raise Violation(evidence)


@attrs.frozen
class Clause:
    """One rule of the restart-marker contract."""

    #: Short stable identifier, printed in reports and used to select clauses.
    name: str
    #: The rule in one or two plain sentences.
    description: str
    #: Runs the check; raises :class:`Violation` (or anything else) to fail.
    #: Returns a short note on what was exercised.
    check: Callable[[Subject], str]
    #: Returns why the clause does not apply, or ``None`` when it does.
    applies: Callable[[Subject], str | None] = attrs.field(default=lambda subject: None)
