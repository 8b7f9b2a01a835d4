"""STAT <path>, MLSR, SITE CHMOD/UTIME/SYMLINK*, :globus-mapping:, pipelining decisions: the session, no sockets."""

from __future__ import annotations

import calendar

import pytest

from transfercore.contract import ObjectInfo
from transfercore.gridftp import arguments as A
from transfercore.gridftp import listing
from transfercore.gridftp.control import Command, Reply
from transfercore.gridftp.errors import BadArgument, ReplyError
from transfercore.gridftp.hostport import HostPort
from transfercore.gridftp.session import (
    Authenticate,
    Listing,
    MakeSymlink,
    Session,
    SessionConfig,
    SetAttributes,
    State,
    StorageOp,
)


def cmd(session: Session, line: str) -> list:
    verb, _, arg = line.partition(" ")
    return session.handle(Command(verb.upper(), arg))


def codes(outputs: list) -> list[int]:
    return [o.code for o in outputs if isinstance(o, Reply)]


def logged_in(**config: object) -> Session:
    s = Session(SessionConfig(anonymous=True, anonymous_write=True, **config))  # type: ignore[arg-type]
    cmd(s, "USER anonymous")
    assert codes(cmd(s, "PASS x@y")) == [230]
    return s


FILE = ObjectInfo(path="/d/a.txt", size=6, mtime_ns=1_577_880_000 * 10**9, mode=0o100600)
DIR = ObjectInfo(path="/d", size=4096, mtime_ns=1_577_880_000 * 10**9, is_dir=True, mode=0o40755)


# -- STAT <path> ----------------------------------------------------------------------------


def test_stat_with_a_path_asks_the_storage_and_answers_an_ls_line() -> None:
    s = logged_in()
    assert cmd(s, "STAT /d/a.txt") == [StorageOp("STAT", "/d/a.txt")]
    [reply] = s.storage_done(StorageOp("STAT", "/d/a.txt"), FILE)
    assert reply.code == 213
    assert reply.lines[0] == "status of /d/a.txt" and reply.lines[-1] == "End."
    assert reply.lines[1].startswith("-rw------- ") and reply.lines[1].endswith(" a.txt")
    assert " 6 Jan 01 " in reply.lines[1]
    [reply] = s.storage_done(StorageOp("STAT", "/d"), DIR)
    assert reply.code == 213 and reply.lines[1].startswith("drwxr-xr-x ") and reply.lines[1].endswith(" d")


def test_stat_without_a_path_is_the_session_status() -> None:
    s = logged_in()
    [reply] = cmd(s, "STAT")
    assert reply.code == 211


def test_stat_path_relative_to_cwd() -> None:
    s = logged_in()
    s.cwd = "/d"
    assert cmd(s, "STAT a.txt") == [StorageOp("STAT", "/d/a.txt")]


# -- MLSR -------------------------------------------------------------------------------------


def test_mlsr_is_a_listing_and_in_feat() -> None:
    s = logged_in()
    cmd(s, "PASV")
    s.passive_done("PASV", (HostPort("127.0.0.1", 5000),))
    [action] = cmd(s, "MLSR /d")
    assert isinstance(action, Listing) and (action.verb, action.path) == ("MLSR", "/d")
    assert s.state is State.TRANSFER
    assert "MLSR" in cmd(logged_in(), "FEAT")[0].lines


def test_mlsr_walk_names_entries_relative_and_never_follows_links() -> None:
    tree = {
        "/r": [
            ObjectInfo("/r/b", 1, 0),
            ObjectInfo("/r/sub", 0, 0, is_dir=True),
            ObjectInfo("/r/loop", 0, 0, is_dir=True, link="."),
            ObjectInfo("/r/.x.tcpart", 1, 0),
        ],
        "/r/sub": [ObjectInfo("/r/sub/c", 2, 0)],
    }
    seen: list[str] = []

    def list_dir(path: str) -> list[ObjectInfo]:
        seen.append(path)
        return tree[path]

    found = listing.walk(list_dir, "/r", hidden=lambda name: name.endswith(".tcpart"))
    assert [rel for rel, _ in found] == ["b", "loop", "sub", "sub/c"]
    assert seen == ["/r", "/r/sub"]  # the link to "." was listed, not entered
    body = listing.mlsr_text(DIR, found, writable=False).decode()
    lines = body.split("\r\n")
    assert lines[0].startswith("Type=cdir;") and lines[0].endswith(" .")
    assert lines[2].startswith("Type=slink;") and "UNIX.slink=.;" in lines[2]
    assert lines[4].endswith(" sub/c")


def test_mlsr_walk_is_bounded() -> None:
    def list_dir(path: str) -> list[ObjectInfo]:
        return [ObjectInfo(f"{path}/f{i}", 0, 0) for i in range(10)]

    with pytest.raises(ReplyError) as err:
        listing.walk(list_dir, "/r", hidden=lambda _: False, limit=5)
    assert err.value.code == 501


# -- SITE CHMOD / UTIME / SYMLINKFROM+SYMLINKTO ------------------------------------------------


def test_site_chmod_and_utime_become_set_attributes() -> None:
    s = logged_in()
    assert cmd(s, "SITE CHMOD 0640 /d/a.txt") == [SetAttributes("/d/a.txt", mode=0o640)]
    assert cmd(s, "SITE CHMOD 755 /d/with space") == [SetAttributes("/d/with space", mode=0o755)]
    when = calendar.timegm((2020, 1, 1, 12, 0, 0)) * 10**9
    assert cmd(s, "SITE UTIME 20200101120000 /d/a.txt") == [SetAttributes("/d/a.txt", mtime_ns=when)]
    # ProFTPD's five-argument form: access, modification and change times, path, UTC
    assert cmd(s, "SITE UTIME 20190101000000 20200101120000 20210101000000 /d/a b UTC") == [
        SetAttributes("/d/a b", mtime_ns=when)
    ]
    assert s.attributes_done(SetAttributes("/d/a.txt", mode=0o640)) == [Reply.one(250, "OK.")]


@pytest.mark.parametrize(
    "line",
    [
        "SITE CHMOD 999 /f",  # Globus would set mode 0
        "SITE CHMOD 77777 /f",
        "SITE CHMOD 644",
        "SITE CHMOD rw /f",
        "SITE UTIME 2020 /f",
        "SITE UTIME 20201301120000 /f",
        "SITE UTIME 20200101120000",
        "SITE UTIME /f 20200101120000",  # the order Globus refuses too
    ],
)
def test_bad_site_arguments_are_501(line: str) -> None:
    assert codes(cmd(logged_in(), line)) == [501]


def test_ftp_time_parser() -> None:
    assert A.parse_ftp_time("19700101000001") == 10**9
    assert A.parse_ftp_time("19700101000001.5") == 1_500_000_000
    with pytest.raises(BadArgument):
        A.parse_ftp_time("19691231235959")


def test_site_namespace_needs_a_writable_login_and_a_capable_driver() -> None:
    s = Session(SessionConfig(anonymous=True))
    cmd(s, "USER anonymous")
    cmd(s, "PASS x")
    assert codes(cmd(s, "SITE CHMOD 600 /f")) == [550]
    s = logged_in(namespace=frozenset({"list", "mkdir"}))
    [reply] = cmd(s, "SITE CHMOD 600 /f")
    assert reply.code == 502 and "cannot set permissions" in reply.lines[0]
    assert codes(cmd(s, "SITE SYMLINKFROM /f")) == [502]
    assert "CHMOD" not in cmd(s, "SITE HELP")[0].lines[1]
    s = logged_in(namespace=frozenset({"set_metadata"}))
    assert "CHMOD UTIME" in cmd(s, "SITE HELP")[0].lines[1]


def test_symlink_from_then_to_makes_a_relative_link() -> None:
    s = logged_in()
    assert codes(cmd(s, "SITE SYMLINKTO /d/l")) == [503]
    assert cmd(s, "SITE SYMLINKFROM /d/a.txt") == [StorageOp("SYMLINKFROM", "/d/a.txt")]
    assert codes(s.storage_done(StorageOp("SYMLINKFROM", "/d/a.txt"), FILE)) == [350]
    # stored relative: an absolute client path would leave the served root on the storage
    assert cmd(s, "SITE SYMLINKTO /d/sub/l") == [MakeSymlink("/d/sub/l", "../a.txt")]
    assert codes(cmd(s, "SITE SYMLINKTO /d/l2")) == [503]  # one link per SYMLINKFROM


# -- :globus-mapping: ---------------------------------------------------------------------------


def test_globus_mapping_is_anonymous_where_anonymous_is_allowed() -> None:
    s = Session(SessionConfig(anonymous=True))
    cmd(s, "USER :globus-mapping:")
    assert codes(cmd(s, "PASS x")) == [230]
    assert not s.writable
    s = Session(SessionConfig())
    cmd(s, "USER :globus-mapping:")
    assert codes(cmd(s, "PASS x")) == [530]


def test_globus_mapping_over_gsi_asks_for_the_mapped_account() -> None:
    s = Session(SessionConfig(anonymous=True))
    s.gsi_authenticated("/O=Grid/CN=someone", delegated=False)
    cmd(s, "USER :globus-mapping:")
    assert cmd(s, "PASS ") == [Authenticate(":globus-mapping:", "")]


# -- one reply to PASS --------------------------------------------------------------------------


def test_refused_login_reply_carries_the_reason() -> None:
    s = Session(SessionConfig())
    cmd(s, "USER alice")
    [action] = cmd(s, "PASS secret")
    assert isinstance(action, Authenticate)
    assert s.login_done(False, reason="Passwords are refused here.") == [Reply.one(530, "Passwords are refused here.")]


# -- pipelining ---------------------------------------------------------------------------------


def test_only_abor_and_bare_stat_act_during_a_transfer() -> None:
    s = logged_in()
    assert not s.urgent(Command("ABOR"))  # no transfer: it waits its turn like any command
    cmd(s, "PASV")
    s.passive_done("PASV", (HostPort("127.0.0.1", 5000),))
    cmd(s, "RETR /f")
    assert s.urgent(Command("ABOR"))
    assert s.urgent(Command("STAT"))
    for queued in ("STAT /f", "PASV", "RETR /g", "NOOP", "QUIT", "PORT 127,0,0,1,1,2"):
        verb, _, arg = queued.partition(" ")
        assert not s.urgent(Command(verb, arg)), queued
