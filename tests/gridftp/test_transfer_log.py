"""The transfer log and the session log of ``serve``, written for real ``globus-url-copy`` transfers."""

from __future__ import annotations

import datetime
import os
import socket
import subprocess
import time
import zlib
from pathlib import Path

import pytest

from transfercore.service.translog import parse_line

from .conftest import needs_globus

pytestmark = [pytest.mark.globus, needs_globus]

SIZE = 3 * 1024 * 1024 + 4321


def guc(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["globus-url-copy", *args], capture_output=True, text=True, timeout=60)
    assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
    return proc


def lines_of(path: Path, count: int, timeout: float = 20.0) -> list[str]:
    """The first ``count`` lines of a log, waiting (bounded) for the server to write them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.05)
    raise AssertionError(f"{path} has {len(lines)} lines, expected {count}: {lines}")


def when(stamp: str) -> float:
    return datetime.datetime.strptime(stamp, "%Y%m%d%H%M%S.%f").replace(tzinfo=datetime.UTC).timestamp()


def test_transfer_log_lines_of_a_put_a_get_and_failures(serve, root, tmp_path):
    src = tmp_path / "src.bin"
    data = os.urandom(SIZE)
    src.write_bytes(data)
    tlog, slog = tmp_path / "transfers.log", tmp_path / "sessions.log"
    srv = serve("--root", str(root), "--anonymous-write", "--marker-interval", "0.2",
                "--transfer-log", str(tlog), "--session-log", str(slog), "--transfer-log-checksum", "adler32")
    before = time.time()
    guc("-fast", "-p", "4", "-tcp-bs", "1048576", f"file://{src}", srv.url("/in/put%20me.bin"), ok=False)
    # the directory does not exist: a failed upload, then the same upload into one that does
    (root / "in").mkdir()
    guc("-fast", "-p", "4", "-tcp-bs", "1048576", f"file://{src}", srv.url("/in/put%20me.bin"))
    guc(srv.url("/in/put%20me.bin"), f"file://{tmp_path / 'back.bin'}")
    guc(srv.url("/missing.bin"), f"file://{tmp_path / 'none.bin'}", ok=False)
    after = time.time()
    # a complete upload's line waits for its checksum, read back off the event loop, so the next
    # transfer's line may come first: each line is found by what it records, not by its place
    records = [parse_line(line) for line in lines_of(tlog, 4)]

    def one(kind: str, complete: bool) -> dict[str, str]:
        (rec,) = [r for r in records if r["TYPE"] == kind and (r["CODE"] == "226") == complete]
        return rec

    failed_put, put, get, failed_get = one("STOR", False), one("STOR", True), one("RETR", True), one("RETR", False)

    # the Globus -log-transfer fields, in their order, then this server's own two
    assert list(put) == ["DATE", "HOST", "PROG", "NL.EVNT", "START", "USER", "FILE", "BUFFER", "BLOCK",
                         "NBYTES", "VOLUME", "STREAMS", "STRIPES", "DEST", "TYPE", "CODE", "DURABLE", "CHECKSUM"]
    for rec in (failed_put, put, get, failed_get):
        assert rec["HOST"] == socket.gethostname() and rec["PROG"] == "transfercore"
        assert rec["NL.EVNT"] == "FTP_INFO" and rec["VOLUME"] == "/" and rec["STRIPES"] == "1"
        assert rec["USER"] == "anonymous" and rec["DEST"] == "[127.0.0.1]"
        assert before - 1 <= when(rec["START"]) <= when(rec["DATE"]) <= after + 1

    assert put["TYPE"] == "STOR" and put["CODE"] == "226"
    assert put["FILE"] == "/in/put%20me.bin"  # a space is escaped: every field stays one word
    assert put["NBYTES"] == str(SIZE) and put["DURABLE"] == str(SIZE)
    assert put["STREAMS"] == "4" and put["BUFFER"] == "1048576"
    assert put["CHECKSUM"] == f"adler32:{zlib.adler32(data):08x}"

    assert get["TYPE"] == "RETR" and get["CODE"] == "226" and get["FILE"] == "/in/put%20me.bin"
    assert get["NBYTES"] == str(SIZE) and get["DURABLE"] == "-" and get["CHECKSUM"] == "-"
    assert int(get["BLOCK"]) > 0 and get["STREAMS"] == "1"

    assert failed_put["TYPE"] == "STOR" and failed_put["CODE"].startswith("5")
    assert failed_put["NBYTES"] == "0" and failed_put["DURABLE"] == "0" and failed_put["CHECKSUM"] == "-"
    assert failed_get["TYPE"] == "RETR" and failed_get["CODE"].startswith("5")
    assert failed_get["FILE"] == "/missing.bin" and failed_get["NBYTES"] == "0"

    # the session log: each globus-url-copy is one session, started, logged in, ended (the fixture's
    # readiness probe is one more, started and ended without a login): 4 x 3 + 2 lines.  The last
    # session's end is written after its client has exited, so all 14 are waited for.
    sessions = [parse_line(line) for line in lines_of(slog, 14)]
    by_id: dict[str, list[dict[str, str]]] = {}
    for s in sessions:
        by_id.setdefault(s["SESSION"], []).append(s)
    logged_in = [evs for evs in by_id.values() if any(e["NL.EVNT"] == "SESSION_LOGIN" for e in evs)]
    assert len(logged_in) == 4
    for start, login, end in logged_in:
        assert [start["NL.EVNT"], login["NL.EVNT"], end["NL.EVNT"]] == ["SESSION_START", "SESSION_LOGIN",
                                                                         "SESSION_END"]
        assert start["DEST"] == login["DEST"] == end["DEST"] == "[127.0.0.1]"
        assert login["USER"] == end["USER"] == "anonymous" and login["ACCESS"] == "write"
        assert float(end["SECONDS"]) > 0 and int(end["COMMANDS"]) > 3 and end["REASON"]


def test_log_files_are_reopened_after_rotation(serve, root, tmp_path):
    from .conftest import Client
    from .test_reload import hup

    tlog = tmp_path / "transfers.log"
    srv = serve("--root", str(root), "--anonymous-write", "--transfer-log", str(tlog))

    def upload(name: str) -> None:
        c = Client(srv.port)
        c.login()
        c.cmd("TYPE I")
        host, port = c.pasv()
        c.raw(f"STOR /{name}\r\n".encode())
        with socket.create_connection((host, port), timeout=20) as data:
            assert c.reply()[0] == 150
            data.sendall(b"x" * 1000)
        assert c.reply()[0] == 226
        c.close()

    upload("one.bin")
    assert parse_line(lines_of(tlog, 1)[0])["FILE"] == "/one.bin"
    tlog.rename(tmp_path / "transfers.log.1")  # as logrotate does, before it sends SIGHUP
    hup(srv, 1)
    upload("two.bin")
    (line,) = lines_of(tlog, 1)
    assert parse_line(line)["FILE"] == "/two.bin" and parse_line(line)["NBYTES"] == "1000"
    assert len((tmp_path / "transfers.log.1").read_text().splitlines()) == 1


def test_a_mode_e_upload_cut_off_logs_the_bytes_its_markers_named_durable(serve, root, tmp_path):
    from transfercore.gridftp.markers import parse_range_marker
    from transfercore.gridftp.modee import encode_block

    from .conftest import Client

    tlog = tmp_path / "transfers.log"
    srv = serve("--root", str(root), "--anonymous-write", "--transfer-log", str(tlog))
    c = Client(srv.port)
    c.login()
    for command in ("TYPE I", "MODE E", "ALLO 4000000", "TREV RESTART 0.1"):
        assert c.cmd(command)[0] == 200, command
    host, port = c.pasv()
    c.raw(b"STOR /cut.bin\r\n")
    data = socket.create_connection((host, port), timeout=20)
    assert c.reply()[0] == 150
    data.sendall(encode_block(0, os.urandom(1_500_000)))
    # wait (bounded by the client's timeout) for a restart marker naming all of it
    named = 0
    while named < 1_500_000:
        code, text = c.reply()
        assert code in (111, 112), text
        if code == 111:
            named += parse_range_marker(text).total()
    data.close()  # cut off: no EOF, 2.5 MB short
    replies = c.until_final()
    assert replies[-1][0] == 451, replies
    named += sum(parse_range_marker(t).total() for code, t in replies if code == 111)
    (line,) = lines_of(tlog, 1)
    rec = parse_line(line)
    assert rec["TYPE"] == "STOR" and rec["CODE"] == "451" and rec["FILE"] == "/cut.bin"
    assert rec["NBYTES"] == "1500000" and rec["DURABLE"] == str(named) == "1500000"
    assert rec["CHECKSUM"] == "-"
    c.close()
