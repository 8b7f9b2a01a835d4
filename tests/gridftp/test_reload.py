"""``SIGHUP``: the configuration and users file read again; sessions in progress keep their settings."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

from transfercore.gridftp.users import add_user

from .conftest import Client, Served


def wait_for_log(srv: Served, text: str, count: int = 1, timeout: float = 20.0) -> str:
    """The server's stderr once ``text`` appears in it ``count`` times (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = srv.log.read_text(errors="replace")
        if log.count(text) >= count:
            return log
        assert srv.proc is not None and srv.proc.poll() is None, log
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in the server log after {timeout} s:\n{srv.log.read_text()}")


def hup(srv: Served, count: int, *, ok: bool = True) -> str:
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGHUP)
    return wait_for_log(srv, "reload: configuration" if ok else "reload refused", count)


def test_sighup_during_an_upload_the_upload_finishes_under_the_old_settings(serve, root, tmp_path):
    cfg = tmp_path / "serve.toml"
    cfg.write_text(f'root = "{root}"\nanonymous_write = true\n')
    srv = serve("--config", str(cfg))
    c = Client(srv.port)
    c.login()
    assert c.cmd("TYPE I")[0] == 200
    host, port = c.pasv()
    c.raw(b"STOR /during.bin\r\n")
    data = socket.create_connection((host, port), timeout=20)
    assert c.reply()[0] == 150
    first = b"a" * (1 << 20)
    data.sendall(first)

    # the new configuration takes write access away from anonymous logins
    cfg.write_text(f'root = "{root}"\nanonymous = true\n')
    hup(srv, 1)

    data.sendall(b"b" * 12345)
    data.close()
    code, text = c.reply()
    assert code == 226, text
    assert (root / "during.bin").read_bytes() == first + b"b" * 12345
    # the session that was in progress keeps the settings it started with
    assert c.cmd("MKD /old-session")[0] == 257
    c.close()
    # a new session gets the new ones
    n = Client(srv.port)
    n.login()
    assert n.cmd("MKD /new-session")[0] == 550
    assert not (root / "new-session").exists()
    n.close()


def test_a_user_removed_from_the_users_file_is_refused_after_sighup(serve, root, tmp_path):
    users = tmp_path / "users"
    add_user(str(users), "alice", "pw-alice")
    add_user(str(users), "bob", "pw-bob")
    srv = serve("--root", str(root), "--users", str(users))
    c = Client(srv.port)
    c.login("bob", "pw-bob")
    c.close()

    kept = [line for line in users.read_text().splitlines() if not line.startswith("bob")]
    users.write_text("\n".join(kept) + "\n")
    hup(srv, 1)

    c = Client(srv.port)
    assert c.cmd("USER bob")[0] == 331
    assert c.cmd("PASS pw-bob")[0] == 530
    c.close()
    c = Client(srv.port)
    c.login("alice", "pw-alice")
    c.close()


def test_a_broken_new_configuration_is_refused_and_the_old_one_stays(serve, root, tmp_path):
    cfg = tmp_path / "serve.toml"
    cfg.write_text(f'root = "{root}"\nanonymous_write = true\n')
    srv = serve("--config", str(cfg))
    for n, broken in enumerate([
        f'root = "{root}"\nanonymous_write = true\nmax_sessions = "many"\n',  # a bad value
        f'root = "{root}\nanonymous = true\n',  # not TOML
        f'root = "{root}"\n',  # nobody could log in
    ], 1):
        cfg.write_text(broken)
        log = hup(srv, n, ok=False)
        assert log.count("the running settings stay") == n
        c = Client(srv.port)
        c.login()
        assert c.cmd(f"MKD /still-writable-{n}")[0] == 257, log
        c.close()
    assert f"{cfg}:3: key 'max_sessions'" in srv.log.read_text()
    # a good file afterwards is taken
    cfg.write_text(f'root = "{root}"\nanonymous = true\n')
    hup(srv, 1)
    c = Client(srv.port)
    c.login()
    assert c.cmd("MKD /now-read-only")[0] == 550
    c.close()


def test_reload_keeps_the_listening_address_and_says_so(serve, root, tmp_path: Path):
    cfg = tmp_path / "serve.toml"
    cfg.write_text(f'root = "{root}"\nanonymous = true\n')
    srv = serve("--config", str(cfg))
    other = tmp_path / "other"
    other.mkdir()
    cfg.write_text(f'root = "{other}"\nanonymous = true\nhost = "127.0.0.2"\n')
    log = hup(srv, 1)
    assert "reload: root, host change only at a restart; the running values stay" in log
    (root / "here.txt").write_text("x")
    c = Client(srv.port)
    c.login()
    assert c.cmd("SIZE /here.txt")[0] == 213
    c.close()
