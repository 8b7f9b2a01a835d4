"""A refused login gets exactly one reply to its PASS, through a real socket.

The server listens on 127.0.0.1 only; ``_loopback`` is patched to call that
address remote, so the refusal path for passwords from another host runs.
"""

from __future__ import annotations

from transfercore.gridftp import server as server_mod

from .conftest import Client


def test_refused_password_from_another_host_gets_one_reply(inprocess: int, monkeypatch) -> None:
    monkeypatch.setattr(server_mod, "_loopback", lambda host: False)
    c = Client(inprocess)
    assert c.cmd("USER alice")[0] == 331
    code, text = c.cmd("PASS secret")
    assert code == 530 and "Passwords are refused over an unencrypted connection" in text
    # the next command reads its own reply, not a second 530 left over from PASS
    assert c.cmd("NOOP") == (200, "200 Command Successful.")
    assert c.cmd("USER anonymous")[0] == 331
    assert c.cmd("PASS x@y")[0] == 230


def test_wrong_password_from_loopback_gets_one_reply(inprocess: int) -> None:
    c = Client(inprocess)
    assert c.cmd("USER alice")[0] == 331
    assert c.cmd("PASS wrong") == (530, "530 Login incorrect.")
    assert c.cmd("NOOP")[0] == 200
