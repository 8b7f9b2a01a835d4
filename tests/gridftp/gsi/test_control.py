from __future__ import annotations

import base64
from pathlib import Path

import attrs
import pytest

from transfercore.gridftp.gsi import (
    Credential,
    GridMap,
    GSIConfig,
    GSIPaths,
    SecurityContext,
    make_ssl_context,
)
from transfercore.gridftp.gsi.control import Authenticated, Command, ControlSecurity, Reply
from transfercore.testing.gsi_pki import GridPKI


@pytest.fixture()
def config(pki: GridPKI) -> GSIConfig:
    return GSIConfig.load(GSIPaths.resolve(host_cert=str(pki.host_cert), host_key=str(pki.host_key),
                                           ca_dir=str(pki.ca_dir), gridmap=str(pki.gridmap), environ={}))


def login(sec: ControlSecurity, user: Credential, config: GSIConfig) -> tuple[SecurityContext, object]:
    """Play the client's side of AUTH GSSAPI / ADAT as globus-url-copy does."""
    assert sec.receive(b"AUTH GSSAPI") == Reply(334, "Using authentication type; ADAT must follow.")
    client = SecurityContext(make_ssl_context(user, config.trust, server_side=False), config.trust,
                             server_side=False, delegate=user)
    token = client.step(b"")
    for _ in range(10):
        event = sec.receive(b"ADAT " + base64.b64encode(token))
        reply = event.reply if isinstance(event, Authenticated) else event
        assert isinstance(reply, Reply)
        if reply.code != 335:
            if reply.code == 235 and reply.text.startswith("ADAT="):
                client.step(base64.b64decode(reply.text[5:]))
            return client, event
        token = client.step(base64.b64decode(reply.text[5:]))
    raise AssertionError("ADAT did not finish")


def test_login_then_protected_commands_and_replies(config: GSIConfig, proxy: Credential, pki: GridPKI) -> None:
    sec = ControlSecurity(config)
    assert sec.receive(b"FEAT") == Command(b"FEAT")  # before AUTH, the session decides
    assert sec.receive(b"ENC AAAA").code == 503  # type: ignore[union-attr]
    client, event = login(sec, proxy, config)
    assert isinstance(event, Authenticated)
    assert event.identity == pki.user_dn
    assert event.delegated is not None and event.delegated.identity == pki.user_dn
    assert sec.account(":globus-mapping:") == "griduser"
    # plain commands are refused once the channel is secured
    assert sec.receive(b"RETR /etc/passwd").code == 533  # type: ignore[union-attr]
    wrapped = base64.b64encode(client.wrap(b"USER :globus-mapping:\r\n"))
    assert sec.receive(b"ENC " + wrapped) == Command(b"USER :globus-mapping:")
    assert sec.receive(b"ENC not-base64").code == 535  # type: ignore[union-attr]
    assert not sec.broken
    assert sec.receive(b"MIC " + base64.b64encode(client.wrap(b"PWD\r\n"))) == Command(b"PWD")
    line = sec.protect(b"257 \"/\"\r\n")
    assert line.startswith(b"632 ") and line.endswith(b"\r\n")
    assert client.unwrap(base64.b64decode(line[4:-2])) == b"257 \"/\"\r\n"
    # a replayed token is refused, and TLS cannot go on after a bad record: the connection must close
    event = sec.receive(b"ENC " + wrapped)
    assert isinstance(event, Reply) and event.code == 535 and "closing" in event.text
    assert sec.broken
    assert sec.receive(b"ENC " + base64.b64encode(client.wrap(b"NOOP\r\n"))).code == 421  # type: ignore[union-attr]


def test_subject_missing_from_gridmap_is_refused(config: GSIConfig, proxy: Credential) -> None:
    sec = ControlSecurity(attrs.evolve(config, gridmap=GridMap.parse('"/O=Other/CN=Someone" someone')))
    _, event = login(sec, proxy, config)
    assert isinstance(event, Reply) and event.code == 530
    assert "CN=Jane Doe has no entry in grid-mapfile" in event.text
    assert not sec.secured
    assert sec.receive(b"ENC AAAA").code == 503  # type: ignore[union-attr]


def test_other_mechanisms_and_stray_adat(config: GSIConfig) -> None:
    sec = ControlSecurity(config)
    assert sec.receive(b"AUTH TLS").code == 504  # type: ignore[union-attr]
    assert sec.receive(b"ADAT AAAA").code == 503  # type: ignore[union-attr]
    sec.receive(b"AUTH GSSAPI")
    event = sec.receive(b"ADAT !!!")
    assert isinstance(event, Reply) and event.code == 530 and "not base64" in event.text


def test_config_errors_name_the_option(pki: GridPKI, tmp_path: Path) -> None:
    from transfercore.gridftp.gsi import GSIConfigError

    with pytest.raises(GSIConfigError, match="--host-cert"):
        GSIConfig.load(GSIPaths.resolve(host_cert=str(tmp_path / "none"), host_key=str(pki.host_key),
                                        ca_dir=str(pki.ca_dir), gridmap=str(pki.gridmap)))
    with pytest.raises(GSIConfigError, match="--ca-dir"):
        GSIConfig.load(GSIPaths.resolve(host_cert=str(pki.host_cert), host_key=str(pki.host_key),
                                        ca_dir=str(tmp_path / "none"), gridmap=str(pki.gridmap)))
    env = GSIPaths.resolve(environ={"X509_CERT_DIR": "/x", "GRIDMAP": "/g"})
    assert (env.ca_dir, env.gridmap, env.host_cert) == ("/x", "/g", "/etc/grid-security/hostcert.pem")


def test_filter_passes_whole_lines_and_holds_partial_ones(config: GSIConfig) -> None:
    from transfercore.gridftp.gsi.control import ControlFilter

    f = ControlFilter(config)
    assert f.receive(b"USER jane\r\nPA") == [b"USER jane\r\n"]
    assert f.receive(b"SS x") == []
    assert f.receive(b"\r\n\r\nAUTH GSSAPI\r\n") == [b"PASS x\r\n", Reply(334, "Using authentication type; ADAT must follow.")]
    assert f.receive(b"x" * (ControlFilter.MAX_LINE + 1)) == [Reply(500, "Command line too long.")]
    assert f.protect(b"200 ok\r\n") == b"200 ok\r\n"  # not secured yet: replies in the clear
