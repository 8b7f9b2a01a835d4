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


def test_reply_errors_carry_their_code_and_checksum_span():
    import pytest

    from transfercore.gridftp.download import checksum_span
    from transfercore.gridftp.errors import ReplyError
    from transfercore.gridftp.replies import error_reply

    assert checksum_span(10, None, 100) == (10, 100)
    assert checksum_span(10, 500, 100) == (10, 100)
    with pytest.raises(ReplyError) as err:
        checksum_span(101, 1, 100)
    assert error_reply(err.value).code == 501
    assert error_reply(ReplyError(504, "send ALLO first")).code == 504
