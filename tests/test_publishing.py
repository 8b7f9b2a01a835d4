"""When an object is verified against its checksum, and what a mismatch leaves."""

import pytest

from transfercore.publishing import Check, Leftover, leftover, plan


@pytest.mark.parametrize(
    ("expected", "read_back", "check"),
    [(False, False, Check.NONE), (False, True, Check.NONE), (True, True, Check.BEFORE), (True, False, Check.AFTER)],
)
def test_plan(expected: bool, read_back: bool, check: Check) -> None:
    assert plan(expected, read_back) is check


@pytest.mark.parametrize(
    ("check", "atomic", "left"),
    [
        (Check.BEFORE, True, Leftover.KEPT),
        (Check.BEFORE, False, Leftover.PARTIAL_TO_REMOVE),
        (Check.AFTER, True, Leftover.PUBLISHED_TO_REMOVE),
        (Check.AFTER, False, Leftover.PUBLISHED_TO_REMOVE),
    ],
)
def test_a_mismatch_never_stays_under_the_final_name(check: Check, atomic: bool, left: Leftover) -> None:
    assert leftover(check, atomic) is left


def test_nothing_compared_cannot_mismatch() -> None:
    with pytest.raises(ValueError, match="nothing is compared"):
        leftover(Check.NONE, True)
