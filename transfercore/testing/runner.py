"""Run clauses against a scratch URL and collect a report."""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterable

import attrs

from transfercore.location import Location

from .catalog import CLAUSES
from .clause import Clause, Disabled, NotRun, Outcome, Verdict
from .subject import KitOptions, Subject, check_scratch


@attrs.frozen
class ClauseResult:
    clause: Clause
    verdict: Verdict
    seconds: float

    @property
    def outcome(self) -> Outcome:
        return self.verdict.outcome


@attrs.frozen
class Report:
    url: str
    results: tuple[ClauseResult, ...]

    @property
    def ok(self) -> bool:
        return all(r.outcome is not Outcome.FAIL for r in self.results)

    def failed(self) -> list[str]:
        return [r.clause.name for r in self.results if r.outcome is Outcome.FAIL]

    def not_run(self) -> list[str]:
        return [r.clause.name for r in self.results if r.outcome is Outcome.NOT_RUN]

    def result(self, name: str) -> ClauseResult:
        return next(r for r in self.results if r.clause.name == name)


def _unexpected(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    return f"unexpected {type(exc).__name__}: {exc}{where}"


def run_clause(clause: Clause, url: str | Location, options: KitOptions | None = None) -> ClauseResult:
    """Run one clause on a fresh driver instance; nothing it raises escapes as a skip."""
    started = time.monotonic()
    subject = Subject(url, options)
    try:
        reason = clause.applies(subject)
        if reason is not None:
            verdict = Verdict(Outcome.NOT_APPLICABLE, reason)
        else:
            verdict = Verdict.passed(clause.check(subject))
    except Disabled as exc:
        verdict = Verdict(Outcome.DISABLED, str(exc))
    except NotRun as exc:
        verdict = Verdict(Outcome.NOT_RUN, str(exc))
    except AssertionError as exc:
        verdict = Verdict.failed(str(exc) or _unexpected(exc))
    except Exception as exc:  # noqa: BLE001 - any error is a failure with its evidence
        verdict = Verdict.failed(_unexpected(exc))
    finally:
        subject.cleanup()
    return ClauseResult(clause, verdict, time.monotonic() - started)


def run_kit(
    url: str | Location, options: KitOptions | None = None, clauses: Iterable[Clause] = CLAUSES
) -> Report:
    """Check the scratch location once, then run each clause.

    A scratch location that cannot be used raises
    :class:`~transfercore.testing.subject.ScratchUnusable` (one message, before any clause)."""
    check_scratch(url, options)
    return Report(str(url), tuple(run_clause(c, url, options) for c in clauses))


def format_report(report: Report, *, verbose: bool = False) -> str:
    labels = {
        Outcome.PASS: "PASS",
        Outcome.FAIL: "FAIL",
        Outcome.NOT_APPLICABLE: "N/A ",
        Outcome.DISABLED: "OFF ",
        Outcome.NOT_RUN: "NOT RUN",
    }
    lines = [f"conformance of {report.url}"]
    for r in report.results:
        lines.append(f"  {labels[r.outcome]}  {r.clause.name:<20} {r.seconds:6.2f}s")
        if r.outcome is not Outcome.PASS or verbose:
            for piece in (r.verdict.evidence or "").split("; "):
                lines.append(f"          {piece}")
    counts = {o: sum(1 for r in report.results if r.outcome is o) for o in Outcome}
    lines.append(
        f"{counts[Outcome.PASS]} passed, {counts[Outcome.FAIL]} failed, {counts[Outcome.NOT_RUN]} not run here, "
        f"{counts[Outcome.NOT_APPLICABLE]} not applicable, {counts[Outcome.DISABLED]} switched off"
    )
    if counts[Outcome.NOT_RUN] and not counts[Outcome.FAIL]:
        lines.append("the driver is not proven conformant: install what the NOT RUN clauses name, then run again")
    return "\n".join(lines)
