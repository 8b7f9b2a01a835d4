import pytest

from transfercore.errors import (
    CapabilityError,
    NoSpace,
    NotFound,
    PermissionDenied,
    RestartRejected,
    TransferAborted,
)
from transfercore.gridftp.errors import BadArgument, BadBlockHeader
from transfercore.gridftp.replies import error_reply


@pytest.mark.parametrize(
    "exc,code",
    [
        (RestartRejected("no record"), 553),
        (BadArgument("x"), 501),
        (NotFound("gone"), 550),
        (PermissionDenied("no"), 550),
        (NoSpace("full"), 452),
        (CapabilityError("cannot"), 502),
        (TransferAborted("stop"), 426),
        (BadBlockHeader("bits"), 451),
        (ValueError("boom"), 451),
    ],
)
def test_codes(exc, code):
    assert error_reply(exc, during_transfer=True).code == code


def test_text_is_one_line_and_internal_errors_hide_details():
    r = error_reply(NotFound("a\r\nb"))
    assert "\n" not in r.lines[0]
    assert error_reply(KeyError("secret detail")).lines[0] == "Internal error: KeyError"
