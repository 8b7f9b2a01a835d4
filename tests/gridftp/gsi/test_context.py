from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from transfercore.gridftp.gsi import (
    AuthenticationFailed,
    Credential,
    CredentialExpired,
    ProtectionError,
    SecurityContext,
    TrustStore,
    make_ssl_context,
)
from transfercore.gridftp.gsi.context import Phase
from transfercore.gridftp.gsi.proxy import ProxyKind, proxy_kind
from transfercore.testing.gsi_pki import CA, GridPKI


def establish(
    server: SecurityContext, client: SecurityContext, limit: int = 10
) -> list[int]:
    """Drive two contexts against each other as ADAT would; return the token sizes sent."""
    sizes = []
    token = client.step(b"")
    for _ in range(limit):
        sizes.append(len(token))
        token = server.step(token)
        sizes.append(len(token))
        if server.complete and client.complete:
            return sizes
        token = client.step(token)
        if server.complete and client.complete:
            assert token == b""
            return sizes
    raise AssertionError(f"no context after {limit} rounds: {server.phase}, {client.phase}")


def pair(host: Credential, user: Credential, trust: TrustStore, *, delegate: bool = True,
         client_trust: TrustStore | None = None):
    server = SecurityContext(make_ssl_context(host, trust, server_side=True), trust, server_side=True)
    ctrust = client_trust or trust
    client = SecurityContext(
        make_ssl_context(user, ctrust, server_side=False), ctrust, server_side=False,
        delegate=user if delegate else None,
    )
    return server, client


def test_grid_proxy_init_proxy_authenticates_and_delegates(host, proxy, trust, pki: GridPKI) -> None:
    server, client = pair(host, proxy, trust)
    establish(server, client)
    assert server.peer_identity == pki.user_dn
    assert client.peer_identity == "/O=Transfercore Test Grid/CN=host/localhost"
    delegated = server.delegated
    assert delegated is not None
    assert delegated.identity == pki.user_dn
    # a new proxy of the user's proxy, for a key only the server holds, limited as Globus asks
    assert delegated.certificate.issuer == proxy.certificate.subject
    assert delegated.certificate.public_key() == delegated.key.public_key()
    assert delegated.key.public_key() != proxy.key.public_key()
    assert proxy_kind(delegated.certificate) is ProxyKind.LIMITED
    # the delegated credential is itself accepted by GSI as the user
    again_server, again_client = pair(host, delegated, trust, delegate=False)
    establish(again_server, again_client)
    assert again_server.peer_identity == pki.user_dn
    assert again_server.delegated is None


def test_no_delegation_when_not_asked(host, proxy, trust) -> None:
    server, client = pair(host, proxy, trust, delegate=False)
    establish(server, client)
    assert server.delegated is None
    assert server.complete and client.complete


def test_wrap_unwrap_both_ways_and_tampering_is_refused(host, proxy, trust) -> None:
    server, client = pair(host, proxy, trust, delegate=False)
    establish(server, client)
    token = client.wrap(b"STOR /x\r\n")
    assert b"STOR" not in token  # confidential
    assert server.unwrap(token) == b"STOR /x\r\n"
    big = bytes(range(256)) * 300
    assert client.unwrap(server.wrap(big)) == big
    forged = bytearray(client.wrap(b"DELE /important\r\n"))
    forged[-3] ^= 0x40
    with pytest.raises(ProtectionError):
        server.unwrap(bytes(forged))


def test_certificate_of_untrusted_ca_is_refused(host, trust, tmp_path: Path) -> None:
    rogue = CA.make("Transfercore Test Grid")  # same name, different key: not the trusted CA
    user = rogue.issue(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Transfercore Test Grid"),
                                  x509.NameAttribute(NameOID.COMMON_NAME, "Mallory")]))
    server, client = pair(host, user, trust, delegate=False)
    with pytest.raises(AuthenticationFailed, match="not issued by a CA trusted"):
        establish(server, client)
    assert server.phase is Phase.FAILED
    assert server.peer_identity is None


def test_expired_proxy_is_refused_saying_so(host, trust, pki: GridPKI) -> None:
    server, client = pair(host, pki.python_proxy(expired=True), trust, delegate=False)
    with pytest.raises(CredentialExpired, match=r"client's proxy or certificate has expired .*grid-proxy-init"):
        establish(server, client)


def test_signing_policy_limits_what_the_ca_may_sign(host, trust, pki: GridPKI, tmp_path: Path) -> None:
    ca_dir = tmp_path / "certificates"
    pki.ca.install(ca_dir, namespace="/O=Somewhere Else/*")
    narrow = TrustStore.load(ca_dir)
    user = Credential(chain=(pki.user.certificate,), key=pki.user.key)
    server, client = pair(host, user, narrow, delegate=False, client_trust=trust)
    with pytest.raises(AuthenticationFailed, match="signing policy .* does not allow it to sign .*Jane Doe"):
        establish(server, client)


def test_missing_signing_policy_is_refused(host, trust, pki: GridPKI, tmp_path: Path) -> None:
    ca_dir = tmp_path / "certificates"
    digest = pki.ca.install(ca_dir)
    (ca_dir / f"{digest}.signing_policy").unlink()
    bare = TrustStore.load(ca_dir)
    user = Credential(chain=(pki.user.certificate,), key=pki.user.key)
    server, client = pair(host, user, bare, delegate=False, client_trust=trust)
    with pytest.raises(AuthenticationFailed, match="has no signing policy"):
        establish(server, client)


def test_garbage_token_fails_cleanly(host, trust) -> None:
    server = SecurityContext(make_ssl_context(host, trust, server_side=True), trust, server_side=True)
    with pytest.raises(AuthenticationFailed, match="TLS handshake"):
        server.step(b"\x16\x03\x01\x00\x05hello" + b"\0" * 20)
    with pytest.raises(AuthenticationFailed):
        server.step(b"more")


def test_peer_check_refuses_the_wrong_identity(host, proxy, trust) -> None:
    def only_bob(identity: str) -> None:
        raise AuthenticationFailed(f"{identity} is not bob")

    server = SecurityContext(make_ssl_context(host, trust, server_side=True), trust, server_side=True)
    client = SecurityContext(make_ssl_context(proxy, trust, server_side=False), trust, server_side=False,
                             check_peer=only_bob)
    with pytest.raises(AuthenticationFailed, match="host/localhost is not bob"):
        establish(server, client)
