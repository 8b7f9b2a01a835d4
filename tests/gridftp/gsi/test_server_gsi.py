"""``transfercore serve --gsi`` driven by a GSI client written with this package over a real socket:
the cases the real client will not produce (an expired proxy sent anyway, commands in the clear)."""

from __future__ import annotations

import base64

import pytest

from transfercore.gridftp.gsi import Credential, SecurityContext, make_ssl_context
from transfercore.testing.gsi_pki import GridPKI

from ..conftest import Client


class GSIClient(Client):
    def authenticate(self, user: Credential, pki: GridPKI) -> tuple[int, str]:
        from transfercore.gridftp.gsi import TrustStore

        trust = TrustStore.load(pki.ca_dir)
        assert self.cmd("AUTH GSSAPI")[0] == 334
        self.ctx = SecurityContext(make_ssl_context(user, trust, server_side=False), trust, server_side=False,
                                   delegate=user)
        token = self.ctx.step(b"")
        while True:
            code, text = self.cmd("ADAT " + base64.b64encode(token).decode())
            if code != 335:
                if code == 235 and "ADAT=" in text:
                    self.ctx.step(base64.b64decode(text.split("ADAT=", 1)[1]))
                return code, text
            token = self.ctx.step(base64.b64decode(text.split("ADAT=", 1)[1]))

    def enc(self, text: str) -> tuple[int, str]:
        wrapped = base64.b64encode(self.ctx.wrap(text.encode() + b"\r\n")).decode()
        code, line = self.cmd(f"ENC {wrapped}")
        assert code == 632, line
        plain = self.ctx.unwrap(base64.b64decode(line[4:])).decode()
        return int(plain[:3]), plain.strip()


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> GridPKI:
    return GridPKI.make(tmp_path_factory.mktemp("srv-grid"))


@pytest.fixture
def gsi_server(serve, root, grid: GridPKI):
    return serve("--root", str(root), "--host-cert", str(grid.host_cert), "--host-key", str(grid.host_key),
                 "--ca-dir", str(grid.ca_dir), "--gridmap", str(grid.gridmap))


def test_expired_proxy_is_refused_by_the_server_saying_so(gsi_server, grid: GridPKI) -> None:
    c = GSIClient(gsi_server.port)
    code, text = c.authenticate(grid.python_proxy(expired=True), grid)
    assert code == 530
    assert "proxy or certificate has expired" in text and "grid-proxy-init" in text
    assert c.cmd("USER :globus-mapping:")[0] == 331
    assert c.cmd("PASS ")[0] == 530  # no GSI context, no password users: nobody gets in


def test_login_protected_commands_and_no_cleartext_after_auth(gsi_server, grid: GridPKI, root) -> None:
    c = GSIClient(gsi_server.port)
    code, _ = c.authenticate(grid.python_proxy(), grid)
    assert code == 235
    assert c.cmd("PWD")[0] == 533  # in the clear after AUTH: refused
    assert c.enc("USER :globus-mapping:")[0] == 331
    assert c.enc("PASS ")[0] == 230
    assert c.enc("MKD /made-by-gsi")[0] == 257
    assert (root / "made-by-gsi").is_dir()
    assert c.enc("DCAU N")[0] == 200
    assert c.enc("PROT P")[0] == 536  # protection needs DCAU
    assert c.enc("DCAU A")[0] == 200
    assert c.enc("PBSZ 1048576") == (200, "200 PBSZ=1048576")
    assert c.enc("PROT P")[0] == 200
    assert c.enc("QUIT")[0] == 221


def test_user_outside_the_gridmap_accounts_is_refused(gsi_server, grid: GridPKI) -> None:
    c = GSIClient(gsi_server.port)
    assert c.authenticate(grid.python_proxy(), grid)[0] == 235
    assert c.enc("USER root")[0] == 331
    code, text = c.enc("PASS ")
    assert code == 530 and "may not log in as 'root'" in text
