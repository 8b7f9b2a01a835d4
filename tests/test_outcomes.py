"""One error-to-outcome table, and GridFTP's codes derived from it once for serve and the DSI."""

from __future__ import annotations

import pytest

from transfercore import errors as E
from transfercore.gridftp.replies import FAILURES, error_reply, failure
from transfercore.outcomes import Outcome, outcome_of


@pytest.mark.parametrize(
    "exc, outcome, code",
    [
        (E.AlreadyExists("taken"), Outcome.EXISTS, 553),
        (E.NoSpace("full"), Outcome.NO_SPACE, 452),
        (E.QuotaExceeded("over"), Outcome.QUOTA_EXCEEDED, 452),
        (E.PathEscapesRoot("out"), Outcome.PATH_NOT_ALLOWED, 550),
        (E.IsADirectory("dir"), Outcome.IS_DIRECTORY, 553),
        (E.TransferAborted("stop"), Outcome.ABORTED, 426),
        (E.StorageError("EIO"), Outcome.STORAGE_FAILED, 451),
        (KeyError("x"), Outcome.INTERNAL, 451),
    ],
)
def test_the_most_specific_outcome_and_its_code(exc, outcome, code):
    assert outcome_of(exc) is outcome
    assert failure(exc).code == code


def test_every_outcome_has_a_gridftp_failure():
    assert set(FAILURES) == set(Outcome)


def test_serve_and_the_dsi_answer_the_same_code():
    from transfercore_globus_dsi.replies import error_reply as dsi_reply

    for exc in (E.AlreadyExists("a"), E.NoSpace("b"), E.NotFound("c"), E.RestartRejected("d"), E.InvalidRead("e")):
        assert error_reply(exc, during_transfer=True).code == dsi_reply(exc).code
