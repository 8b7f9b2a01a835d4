"""Every reply a data transfer can end with, decided by the sans-I/O session (no sockets)."""

from __future__ import annotations

import pytest

from transfercore import errors as E
from transfercore.gridftp.errors import BadBlockHeader, NoDataConnection, TooManyDataConnections
from transfercore.gridftp.hostport import HostPort
from transfercore.gridftp.session import Active, Listing, Retrieve, Session, SessionConfig, Store
from transfercore.gridftp.spool import SpoolFull

DATA = Active((HostPort("127.0.0.1", 5000),))
STORE = Store("/f", DATA, "E", None, 10)
RETRIEVE = Retrieve("/f", DATA, "E", None)
LISTING = Listing("MLSD", "/", DATA, "S")


@pytest.fixture
def session():
    return Session(SessionConfig(anonymous=True, anonymous_write=True))


def test_the_preliminary_replies(session):
    assert session.transfer_started(STORE).code == 150
    assert "spooling" in session.transfer_started(STORE, spooled=True).lines[0]
    assert "BINARY" in session.transfer_started(RETRIEVE).lines[0]
    assert "listing" in session.transfer_started(LISTING).lines[0]


def test_finished_and_aborted(session):
    for action in (STORE, RETRIEVE, LISTING):
        assert session.transfer_finished(action).code == 226
    assert session.abort_finished().code == 226
    # the client's ABOR is what it hears about, whatever the data connections said
    assert session.transfer_failed(OSError("reset by peer"), aborted=True).code == 426


@pytest.mark.parametrize(
    "exc, code",
    [
        (NoDataConnection("no listener"), 425),
        (OSError("connection reset"), 426),
        (E.TransferAborted("stop"), 426),
        (BadBlockHeader("bits"), 451),
        (TooManyDataConnections("more than 32"), 451),
        (E.StorageError("EIO"), 451),
        (E.InvalidWrite("holes"), 451),
        (E.ChecksumMismatch("md5", "a", "b"), 451),
        (KeyError("bug"), 451),
        (E.NoSpace("full"), 452),
        (SpoolFull("over the limit"), 552),
        (E.NotFound("gone"), 550),
        (E.PermissionDenied("no"), 550),
        (E.RestartRejected("no record"), 553),
        (E.IsADirectory("/f is a directory"), 553),
        (E.AlreadyExists("taken"), 553),
    ],
)
def test_every_failure_ends_in_one_reply(session, exc, code):
    reply = session.transfer_failed(exc)
    assert reply.code == code
    assert "\n" not in reply.lines[0]


def test_results_of_other_actions(session):
    from transfercore.gridftp.session import Checksum, Rename

    assert session.renamed(Rename("/a", "/b")).code == 250
    done = session.checksum_done(Checksum("MD5", "/a", 0, None), "d41d8cd98f00b204e9800998ecf8427e")
    assert (done.code, done.lines[0]) == (213, "d41d8cd98f00b204e9800998ecf8427e")
    assert session.command_failed(E.AlreadyExists("/a exists")).code == 553
    assert session.passive_failed(E.TransferCoreError("no free port")).code == 425
    assert session.closing("idle for 900 s").code == 421


def test_states_change_only_through_the_table(session):
    from transfercore.gridftp.errors import LocalProtocolError
    from transfercore.gridftp.session import TRANSITIONS, Change, State

    assert session.state is State.NEED_USER
    session._change(Change.USER_GIVEN)
    session._change(Change.LOGGED_IN)
    session._change(Change.TRANSFER_STARTED)
    assert session.state is State.TRANSFER
    with pytest.raises(LocalProtocolError, match="no transition from transfer on user-given"):
        session._change(Change.USER_GIVEN)
    session._change(Change.TRANSFER_ENDED)
    session._change(Change.CLOSED)
    assert session.state is State.CLOSED
    # nothing leaves CLOSED but a transfer's late end
    assert [c for (s, c) in TRANSITIONS if s is State.CLOSED] == [Change.TRANSFER_ENDED]
