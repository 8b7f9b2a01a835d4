"""The conformance kit as pytest tests a driver's own suite includes in a few lines::

    import pytest
    from transfercore.testing.pytest_kit import DriverConformance

    class TestConformance(DriverConformance):
        @pytest.fixture
        def conformance_url(self, tmp_path):
            return f"mydriver://{tmp_path}"

Each clause becomes one test.  A failing clause fails with its evidence, and
so does one that cannot run on this machine (it says what to install); a
clause that does not apply because of a declared capability is reported as
skipped with that reason, never as passed.
"""

from __future__ import annotations

import pytest

from .catalog import CLAUSES
from .clause import Clause, Outcome
from .runner import run_clause
from .subject import KitOptions


class DriverConformance:
    """Subclass and provide a ``conformance_url`` fixture naming a writable scratch location."""

    #: Override to change the seed or switch off the power-loss clause.
    conformance_options: KitOptions = KitOptions()

    @pytest.fixture
    def conformance_url(self) -> str:
        raise NotImplementedError("define a conformance_url fixture returning a scratch URL for the driver")

    @pytest.mark.parametrize("clause", CLAUSES, ids=[c.name for c in CLAUSES])
    def test_clause(self, clause: Clause, conformance_url: str) -> None:
        result = run_clause(clause, conformance_url, self.conformance_options)
        if result.outcome is Outcome.FAIL:
            pytest.fail(f"clause {clause.name} violated: {result.verdict.evidence}", pytrace=False)
        if result.outcome is Outcome.NOT_RUN:
            # What this machine lacks proves nothing either way: never a skip that reads as a pass.
            pytest.fail(f"clause {clause.name} could not run here: {result.verdict.evidence}", pytrace=False)
        if result.outcome is not Outcome.PASS:
            pytest.skip(f"{result.outcome.value}: {result.verdict.evidence}")
