import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transfercore.gridftp.control import BadLine, Command, CommandReader, Reply, parse_line
from transfercore.gridftp.errors import LocalProtocolError


def test_crlf_framing_and_case_insensitive_verbs():
    r = CommandReader()
    assert r.receive(b"user anonymous\r\nPa") == [Command("USER", "anonymous")]
    assert r.receive(b"SS secret\r\nnoop\n") == [Command("PASS", "secret"), Command("NOOP", "")]


def test_argument_keeps_inner_spaces():
    assert parse_line(b"STOR /a dir/my file ") == Command("STOR", "/a dir/my file ")


def test_password_not_in_str():
    assert "secret" not in str(Command("PASS", "secret"))


def test_long_line_reported_once_and_skipped():
    r = CommandReader(max_line=16)
    events = r.receive(b"X" * 40)
    events += r.receive(b"Y" * 40 + b"\r\nNOOP\r\n")
    assert len(events) == 2
    assert isinstance(events[0], BadLine) and "longer" in events[0].reason
    assert events[1] == Command("NOOP")


def test_long_line_slow_path_too():
    r = CommandReader(max_line=8)
    events = r.receive(b"\xff\xfb\x01" + b"A" * 20 + b"\r\nNOOP\r\n")
    assert isinstance(events[0], BadLine)
    assert events[1] == Command("NOOP")


def test_telnet_iac_stripped():
    r = CommandReader()
    # IAC IP IAC DM before ABOR, as clients send it
    assert r.receive(b"\xff\xf4\xff\xf2ABOR\r\n") == [Command("ABOR")]
    assert r.receive(b"NO\xff\xfd\x18OP\r\n") == [Command("NOOP")]


def test_iac_iac_is_literal_ff_which_is_not_utf8():
    r = CommandReader()
    [ev] = r.receive(b"STOR a\xff\xffb\r\n")
    assert isinstance(ev, BadLine) and "UTF-8" in ev.reason


@pytest.mark.parametrize(
    "raw",
    [b"", b"   ", b"ST0R x", b"VERYLONGVERB x", b"ST\rOR x", b"NOOP\x00", "ÜBER x".encode()],
)
def test_bad_lines(raw):
    assert isinstance(parse_line(raw), BadLine)


def test_reply_single_and_multi_line():
    assert Reply.one(200, "OK.").encode() == b"200 OK.\r\n"
    r = Reply(229, ("Entering Striped Passive Mode.", "127,0,0,1,232,141", "End"))
    assert r.encode() == b"229-Entering Striped Passive Mode.\r\n 127,0,0,1,232,141\r\n229 End\r\n"


def test_reply_refuses_line_breaks_and_bad_codes():
    with pytest.raises(LocalProtocolError):
        Reply.one(200, "a\r\n200 injected")
    with pytest.raises(LocalProtocolError):
        Reply.one(99, "x")
    with pytest.raises(LocalProtocolError):
        Reply(200, ())


def test_reply_flags():
    assert Reply.one(150, "x").is_final is False
    assert Reply.one(553, "x").is_error


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(1, 40))
def test_random_bytes_never_crash(blob, chunk):
    r = CommandReader(max_line=64)
    for i in range(0, len(blob), chunk):
        for ev in r.receive(blob[i : i + chunk]):
            assert isinstance(ev, (Command, BadLine))
            if isinstance(ev, Command):
                assert ev.verb.isalpha() and ev.verb.isupper()
                assert "\n" not in ev.arg and "\r" not in ev.arg
