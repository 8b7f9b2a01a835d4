"""A login refused over GSI gets exactly one reply to its PASS, through a real socket."""

from __future__ import annotations

from transfercore.testing.gsi_pki import GridPKI

from .test_server_gsi import GSIClient, grid, gsi_server  # noqa: F401 - fixtures

__all__ = ["grid", "gsi_server"]


def test_refused_gsi_account_gets_one_reply(gsi_server, grid: GridPKI) -> None:  # noqa: F811
    c = GSIClient(gsi_server.port)
    assert c.authenticate(grid.python_proxy(), grid)[0] == 235
    assert c.enc("USER root")[0] == 331
    code, text = c.enc("PASS ")
    assert code == 530 and "may not log in as 'root'" in text
    # the next command reads its own reply, not a second 530 left over from PASS
    assert c.enc("NOOP")[0] == 200
    assert c.enc("USER :globus-mapping:")[0] == 331
    assert c.enc("PASS ")[0] == 230
