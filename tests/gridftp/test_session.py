from hypothesis import given, settings
from hypothesis import strategies as st

from transfercore.contract import ObjectInfo
from transfercore.gridftp.control import BadLine, Command, CommandReader, Reply
from transfercore.gridftp.hostport import HostPort
from transfercore.gridftp.session import (
    Abort,
    Active,
    Authenticate,
    Checksum,
    Close,
    Listing,
    OpenPassive,
    Passive,
    Rename,
    Retrieve,
    Session,
    SessionConfig,
    SetAttributes,
    State,
    StorageOp,
    Store,
)
from transfercore.ranges import RangeSet


def cmd(session, line):
    verb, _, arg = line.partition(" ")
    return session.handle(Command(verb.upper(), arg))


def codes(outputs):
    return [o.code for o in outputs if isinstance(o, Reply)]


def logged_in(**config):
    s = Session(SessionConfig(anonymous=True, anonymous_write=True, **config))
    cmd(s, "USER anonymous")
    assert codes(cmd(s, "PASS x@y")) == [230]
    return s


def test_anonymous_refused_unless_enabled():
    s = Session(SessionConfig())
    assert codes(cmd(s, "USER anonymous")) == [331]
    assert codes(cmd(s, "PASS a")) == [530]
    assert s.state is State.NEED_USER


def test_anonymous_read_only():
    s = Session(SessionConfig(anonymous=True))
    cmd(s, "USER anonymous")
    cmd(s, "PASS a")
    assert codes(cmd(s, "MKD /x")) == [550]
    assert codes(cmd(s, "STOR /x")) == [550]
    assert cmd(s, "SIZE /x") == [StorageOp("SIZE", "/x")]


def test_named_user_needs_authentication_action():
    s = Session(SessionConfig())
    cmd(s, "USER alice")
    assert cmd(s, "PASS pw") == [Authenticate("alice", "pw")]
    assert codes(s.login_done(True, writable=True)) == [230]
    assert s.writable


def test_too_many_login_failures_close():
    s = Session(SessionConfig(max_login_failures=2))
    cmd(s, "USER bob")
    cmd(s, "PASS x")
    assert codes(s.login_done(False)) == [530]
    cmd(s, "USER bob")
    cmd(s, "PASS y")
    out = s.login_done(False)
    assert codes(out) == [421] and isinstance(out[-1], Close)


def test_login_required_but_feat_allowed():
    s = Session()
    assert codes(cmd(s, "PWD")) == [530]
    feat = cmd(s, "FEAT")[0]
    assert feat.code == 211
    text = feat.encode().decode()
    assert "GETPUT" not in text and "CKSM MD5:10;" in text and "REST STREAM" in text


def test_unknown_and_malformed_commands_keep_session():
    s = logged_in()
    assert codes(cmd(s, "XYZZY")) == [500]
    assert codes(s.handle(BadLine("garbage"))) == [500]
    assert codes(cmd(s, "MODE X")) == [501]
    assert "unrecognized transfer mode" in cmd(s, "MODE X")[0].lines[0]
    assert codes(cmd(s, "NOOP")) == [200]


def test_stream_put_dialogue():
    s = logged_in()
    assert codes(cmd(s, "TYPE I")) == [200]
    assert cmd(s, "PASV") == [OpenPassive("PASV")]
    out = s.passive_done("PASV", (HostPort("127.0.0.1", 48000),))
    assert out[0].encode() == b"227 Entering Passive Mode (127,0,0,1,187,128)\r\n"
    assert codes(cmd(s, "ALLO 1000")) == [200]
    [store] = cmd(s, "STOR /d/f")
    assert isinstance(store, Store)
    assert (store.path, store.mode, store.alloc, store.restart, store.data) == (
        "/d/f",
        "S",
        1000,
        None,
        Passive(),
    )
    assert s.state is State.TRANSFER
    assert codes(cmd(s, "PWD")) == [503]
    s.transfer_done()
    assert s.alloc is None and s.data is None and s.state is State.READY


def test_mode_e_restart_and_trev():
    s = logged_in()
    cmd(s, "MODE E")
    cmd(s, "TREV RESTART 1")
    cmd(s, "PASV")
    s.passive_done("PASV", (HostPort("127.0.0.1", 48000),))
    assert codes(cmd(s, "REST 0-100,200-300")) == [350]
    [store] = cmd(s, "STOR f")
    assert store.restart == RangeSet.of((0, 100), (200, 300))
    assert store.restart_interval == 1.0


def test_rest_cleared_by_unrelated_command():
    s = logged_in()
    cmd(s, "REST 100")
    cmd(s, "SIZE /x")
    cmd(s, "PORT 127,0,0,1,1,2")
    [retr] = cmd(s, "RETR /x")
    assert retr.restart is None


def test_rest_range_list_in_mode_s_is_501():
    s = logged_in()
    assert codes(cmd(s, "REST 0-5")) == [501]


def test_retr_parallelism_and_port_bounce_protection():
    s = Session(SessionConfig(anonymous=True), peer_host="127.0.0.1")
    cmd(s, "USER anonymous")
    cmd(s, "PASS x")
    cmd(s, "MODE E")
    assert codes(cmd(s, "OPTS RETR Parallelism=4,4,4;")) == [200]
    assert codes(cmd(s, "PORT 10,0,0,1,1,2")) == [501]
    assert codes(cmd(s, "PORT 127,0,0,1,1,2")) == [200]
    [retr] = cmd(s, "RETR /f")
    assert isinstance(retr, Retrieve)
    assert retr.parallelism == 4 and retr.data == Active((HostPort("127.0.0.1", 258),))


def test_transfer_needs_data_setup():
    s = logged_in()
    assert codes(cmd(s, "RETR /f")) == [501]


def test_abort_during_transfer_and_idle():
    s = logged_in()
    assert codes(cmd(s, "ABOR")) == [226]
    cmd(s, "PASV")
    s.passive_done("EPSV", (HostPort("127.0.0.1", 5000),))
    cmd(s, "RETR /f")
    assert cmd(s, "ABOR") == [Abort()]


def test_spas_reply_multiline():
    s = logged_in()
    out = s.passive_done("SPAS", (HostPort("127.0.0.1", 59533),))
    assert out[0].encode() == b"229-Entering Striped Passive Mode.\r\n 127,0,0,1,232,141\r\n229 End\r\n"


FILE = ObjectInfo("/a", 5, 0)
DIR = ObjectInfo("/d", 0, 0, is_dir=True)


def test_storage_results_become_replies_in_the_session():
    s = logged_in()
    assert s.storage_done(StorageOp("SIZE", "/a"), FILE) == [Reply.one(213, "5")]
    assert codes(s.storage_done(StorageOp("SIZE", "/d"), DIR)) == [550]
    assert codes(s.storage_done(StorageOp("CWD", "/a"), FILE)) == [550]
    assert s.cwd == "/"
    assert codes(s.storage_done(StorageOp("MDTM", "/a"), FILE)) == [213]
    [mlst] = s.storage_done(StorageOp("MLST", "/a"), FILE)
    assert mlst.code == 250 and "Size=5;" in mlst.lines[1]
    assert s.storage_done(StorageOp("MKD", '/x"y'), None) == [Reply.one(257, '"/x""y" directory created.')]
    assert codes(s.storage_done(StorageOp("DELE", "/a"), None)) == [250]


def test_rename_pairing():
    s = logged_in()
    assert codes(cmd(s, "RNTO /b")) == [503]
    assert cmd(s, "RNFR /a") == [StorageOp("RNFR", "/a")]
    s.storage_done(StorageOp("RNFR", "/a"), FILE)
    assert cmd(s, "RNTO /b") == [Rename("/a", "/b")]
    cmd(s, "RNFR /a")
    s.storage_done(StorageOp("RNFR", "/a"), FILE)
    cmd(s, "NOOP")
    assert codes(cmd(s, "RNTO /b")) == [503]


def test_paths_confined_and_cwd():
    s = logged_in()
    assert codes(cmd(s, "SIZE ../../etc/passwd")) == [550]
    assert codes(s.storage_done(StorageOp("CWD", "/d"), DIR)) == [250]
    assert cmd(s, "SIZE f") == [StorageOp("SIZE", "/d/f")]
    assert cmd(s, "CDUP") == [StorageOp("CWD", "/")]
    assert cmd(s, "PWD")[0].lines[0] == '"/d" is current directory.'


def test_cksm_list_esto_eret():
    s = logged_in()
    assert cmd(s, "CKSM MD5 0 -1 /f") == [Checksum("MD5", "/f", 0, None)]
    cmd(s, "PASV")
    s.passive_done("PASV", (HostPort("127.0.0.1", 5000),))
    [ls] = cmd(s, "MLSD /d")
    assert ls == Listing("MLSD", "/d", Passive(), "S")
    s.transfer_done()
    cmd(s, "PASV")
    s.passive_done("PASV", (HostPort("127.0.0.1", 5000),))
    [esto] = cmd(s, "ESTO A 100 /f")
    assert esto.shift == 100
    s.transfer_done()
    cmd(s, "PASV")
    s.passive_done("PASV", (HostPort("127.0.0.1", 5000),))
    [eret] = cmd(s, "ERET P 5 10 /f")
    assert eret.window == (5, 10)


def test_site_commands():
    s = logged_in()
    assert codes(cmd(s, "SITE HELP")) == [214]
    assert codes(cmd(s, 'SITE CLIENTINFO scheme=ftp;appname="globus-url-copy";')) == [200]
    assert codes(cmd(s, "SITE STORBUFSIZE 1048576")) == [200]
    assert s.store_buffer == 1048576 and s.retr_buffer is None
    assert codes(cmd(s, "SITE RETRBUFSIZE x")) == [501]
    assert cmd(s, "SITE CHMOD 777 /x") == [SetAttributes("/x", mode=0o777)]
    assert codes(cmd(s, "SITE NOSUCH 777 /x")) == [500]
    assert codes(cmd(s, "DCAU N")) == [200]
    assert codes(cmd(s, "DCAU A")) == [504]  # a password login has no credential to authenticate with


def test_command_count_limit():
    s = logged_in(max_commands=5)
    for _ in range(3):
        cmd(s, "NOOP")
    out = cmd(s, "NOOP")
    assert codes(out) == [421] and isinstance(out[-1], Close)
    assert cmd(s, "NOOP") == []


def test_quit_during_transfer_aborts():
    s = logged_in()
    cmd(s, "PASV")
    s.passive_done("PASV", (HostPort("127.0.0.1", 5000),))
    cmd(s, "RETR /f")
    out = cmd(s, "QUIT")
    assert out[0] == Abort() and isinstance(out[-1], Close)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=20))
def test_random_input_yields_only_replies_and_actions(chunks):
    s = logged_in()
    reader = CommandReader(max_line=128)
    for chunk in chunks:
        for ev in reader.receive(chunk + b"\r\n"):
            for out in s.handle(ev):
                if isinstance(out, Reply):
                    out.encode()
            if s.state is State.TRANSFER:
                s.transfer_done()


def test_retr_perf_markers_only_when_asked():
    s = Session(SessionConfig(anonymous=True), peer_host="127.0.0.1")
    cmd(s, "USER anonymous")
    cmd(s, "PASS x")
    cmd(s, "PORT 127,0,0,1,1,2")
    [retr] = cmd(s, "RETR /f")
    assert isinstance(retr, Retrieve) and retr.perf_markers is None
    s.transfer_done()
    assert codes(cmd(s, "OPTS RETR Markers=3;")) == [200]
    cmd(s, "PORT 127,0,0,1,1,2")
    [retr] = cmd(s, "RETR /f")
    assert retr.perf_markers == 3.0
    s.transfer_done()
    assert codes(cmd(s, "OPTS RETR Markers=0;")) == [200]
    cmd(s, "PORT 127,0,0,1,1,2")
    [retr] = cmd(s, "RETR /f")
    assert retr.perf_markers is None


def test_cached_mode_e_connections_keep_the_data_setup():
    s = logged_in()
    cmd(s, "MODE E")
    cmd(s, "PASV")
    s.passive_done("PASV", (HostPort("127.0.0.1", 5000),))
    [first] = cmd(s, "STOR /a")
    s.transfer_done(cached=True)
    [second] = cmd(s, "STOR /b")  # no PASV: the cached connections carry it
    assert second.data is first.data
    s.transfer_done(cached=False)
    [reply] = cmd(s, "STOR /c")
    assert reply.code == 501 and "no data connection" in reply.lines[0]


def test_cksm_crc32c_is_offered():
    s = logged_in()
    assert cmd(s, "CKSM CRC32C 0 -1 /f") == [Checksum("CRC32C", "/f", 0, None)]
    [feat] = cmd(s, "FEAT")
    assert any("CRC32C:" in line for line in feat.lines)
