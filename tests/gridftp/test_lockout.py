"""One client cannot lock others out of ``transfercore serve``, nor spool uploads outside the root."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from transfercore.testing.loopback import open_paths

from .conftest import Client


def test_slowloris_and_idle_crowd_do_not_stop_a_real_client(serve, root, tmp_path: Path) -> None:
    srv = serve("--root", str(root), "--anonymous-write", "--login-timeout", "3")
    stop = threading.Event()
    trickled = threading.Event()
    slow = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(64)]
    idle = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(200)]

    def trickle() -> None:
        # a command line never finished, one byte at a time: it must not reset any timer
        while not stop.wait(0.2):
            for s in slow:
                try:
                    s.send(b"U")
                except OSError:
                    pass
            trickled.set()

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    try:
        assert trickled.wait(10), "the slow connections never trickled"
        started = time.monotonic()
        c = Client(srv.port)
        c.login()
        host, port = c.pasv()
        c.raw(b"STOR /legit.bin\r\n")
        with socket.create_connection((host, port), timeout=10) as d:
            d.sendall(b"real data " * 1000)
        assert [code for code, _ in c.until_final()] == [150, 226]
        elapsed = time.monotonic() - started
        assert elapsed < 3, f"the legitimate client needed {elapsed:.1f} s"
        assert (root / "legit.bin").read_bytes() == b"real data " * 1000
        # the trickling connections are closed by the login deadline, trickle or not
        slow[0].settimeout(6)
        data = b""
        while b"\n" not in data.split(b"\r\n", 1)[-1] and b"421" not in data:
            chunk = slow[0].recv(4096)
            if not chunk:
                break
            data += chunk
        assert b"421 Login timeout" in data or b"421 Too many connections" in data, data
    finally:
        stop.set()
        t.join(5)
        for s in slow + idle:
            s.close()


def _spool_fds(pid: int) -> list[str]:
    return open_paths(pid, "tc-gridftp-spool", "tc-spool-")


def test_refused_stor_stores_nothing_anywhere(serve, root, tmp_path: Path) -> None:
    tmp = tmp_path / "systemtmp"
    tmp.mkdir()
    os.environ["TMPDIR"] = str(tmp)
    try:
        srv = serve("--root", str(root), "--anonymous-write")
    finally:
        del os.environ["TMPDIR"]
    c = Client(srv.port)
    c.login()
    host, port = c.pasv()
    code, text = c.cmd("STOR /no/such/dir/file.bin")
    assert code == 550, text  # refused before the data connection is used
    # the data connection is refused or dropped: no byte of the upload is taken in
    with pytest.raises(OSError) as refused:
        with socket.create_connection((host, port), timeout=10) as d:
            # send until the server's refusal reaches us (a reset), for at most 30 s
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                d.sendall(b"x" * 65536)
    # a send blocked on a server that neither reads nor closes would time out instead
    assert not isinstance(refused.value, TimeoutError), refused.value
    assert list(tmp.iterdir()) == []
    assert sorted(p.name for p in root.rglob("*")) == []


def test_stor_without_allo_spools_inside_the_root_and_bounded(serve, root, tmp_path: Path) -> None:
    srv = serve("--root", str(root), "--anonymous-write", "--max-spool", "12M")
    (root / "sub").mkdir()
    c = Client(srv.port)
    c.login()
    host, port = c.pasv()
    c.raw(b"STOR /sub/big.bin\r\n")
    assert c.reply()[0] == 150
    with socket.create_connection((host, port), timeout=10) as d:
        # a small upload is spooled in the server's memory (no file at all); past
        # 8 MiB (or when a marker is due) it moves to a file beside its destination,
        # never to one elsewhere
        d.sendall(b"y" * 10_000_000)
        deadline = time.monotonic() + 20
        while not (fds := _spool_fds(srv.proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.02)  # polling the server's open files, with a deadline
        assert fds and all(f.startswith(str(root / "sub") + "/") for f in fds), fds
        try:
            d.sendall(b"y" * 4_000_000)  # past the 12 MiB bound
        except OSError:
            pass
    code, text = c.reply()
    assert code == 552 and "at most 12582912 bytes" in text, text
    assert not (root / "sub" / "big.bin").exists()
    assert _spool_fds(srv.proc.pid) == []


def test_wrong_passwords_are_slowed_per_address(serve, root, tmp_path: Path) -> None:
    users = tmp_path / "users"
    subprocess.run([sys.executable, "-m", "transfercore", "serve", "--users", str(users), "--add-user", "alice"],
                   input="right\n", text=True, check=True, capture_output=True)
    srv = serve("--root", str(root), "--users", str(users), "--failed-login-delay", "0.1")
    started = time.monotonic()
    for _ in range(5):  # a new connection for each guess: the per-session limit does not help
        c = Client(srv.port)
        assert c.cmd("USER alice")[0] == 331
        assert c.cmd("PASS wrong")[0] == 530
        c.close()
    # 0 + 0.1 + 0.2 + 0.4 + 0.8 s of enforced waiting, however many connections carry the guesses
    assert time.monotonic() - started > 1.5
    # the right password still gets in (after its turn)
    c = Client(srv.port)
    c.login("alice", "right")
