"""The chain check a data-channel TLS client makes itself (OpenSSL's, less the purpose): what it
accepts, and that each rule OpenSSL would apply still refuses, directly and through a real handshake."""

from __future__ import annotations

import datetime
import random
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from transfercore.gridftp.gsi import AuthenticationFailed, Credential, CredentialExpired, TrustStore
from transfercore.gridftp.gsi.context import make_ssl_context
from transfercore.gridftp.gsi.dataprot import DataProtection, Dcau, Prot
from transfercore.gridftp.gsi.datasock import SecureDataSocket
from transfercore.gridftp.gsi.pathcheck import verify_peer_chain
from transfercore.gridftp.gsi.proxy import PROXY_CERT_INFO, ProxyKind, proxy_path_limit, sign_proxy
from transfercore.testing.gsi_pki import CA, GridPKI

NOW = datetime.datetime.now(datetime.UTC)
HOUR = datetime.timedelta(hours=1)
_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # one key keeps the tests fast


def name(*cns: str, org: str = "Transfercore Test Grid") -> x509.Name:
    rdns = [x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])]
    rdns += [x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, cn)]) for cn in cns]
    return x509.Name(rdns)


def make_cert(subject: x509.Name, issuer: x509.Name, signer: rsa.RSAPrivateKey, *, ca: bool | None = None,
              path_length: int | None = None, cert_sign: bool | None = None, start: datetime.datetime = NOW - HOUR,
              end: datetime.datetime = NOW + 24 * HOUR,
              extra: tuple[tuple[x509.ExtensionType, bool], ...] = ()) -> x509.Certificate:
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(_KEY.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end))
    if ca is not None:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
    if cert_sign is not None:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                          data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
                                          crl_sign=cert_sign, encipher_only=False, decipher_only=False),
                            critical=True)
    for ext, critical in extra:
        b = b.add_extension(ext, critical=critical)
    return b.sign(signer, hashes.SHA256())


def proxy_info(path_length: int | None) -> x509.UnrecognizedExtension:
    """An RFC 3820 ProxyCertInfo (inheritAll), with a path length limit when given."""
    policy = bytes.fromhex("300a" "0608" "2b06010505071501")
    limit = bytes([0x02, 0x01, path_length]) if path_length is not None else b""
    body = limit + policy
    return x509.UnrecognizedExtension(PROXY_CERT_INFO, bytes([0x30, len(body)]) + body)


def proxy_of(issuer: x509.Certificate, cn: str, *, path_length: int | None = None) -> x509.Certificate:
    subject = x509.Name([*issuer.subject.rdns,
                         x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, cn)])])
    return make_cert(subject, issuer.subject, _KEY, extra=((proxy_info(path_length), True),))


@pytest.fixture(scope="module")
def intermediate(pki: GridPKI) -> x509.Certificate:
    """A CA under the trusted root that signs with ``_KEY``."""
    return make_cert(name("Intermediate CA"), pki.ca.cert.subject, pki.ca.key, ca=True, cert_sign=True)


# --- accepted ---------------------------------------------------------------------------------


def test_a_client_auth_only_proxy_chain_is_accepted_to_the_root(pki: GridPKI, trust: TrustStore) -> None:
    user = pki.ca.issue(name("Users", "Jane Doe"), usages=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    proxy = sign_proxy(user.certificate, user.key, _KEY.public_key())
    second = sign_proxy(proxy, _KEY, _KEY.public_key(), kind=ProxyKind.LIMITED)
    path = verify_peer_chain(trust, (second, proxy, user.certificate))
    assert path == (second, proxy, user.certificate, pki.ca.cert)
    assert trust.check_chain(path) == "/O=Transfercore Test Grid/CN=Users/CN=Jane Doe"


def test_order_of_the_sent_chain_and_a_sent_root_do_not_matter(pki: GridPKI, trust: TrustStore,
                                                               intermediate: x509.Certificate) -> None:
    user = make_cert(name("Users", "Ann"), intermediate.subject, _KEY, ca=False)
    proxy = proxy_of(user, "1")
    extra = [intermediate, pki.ca.cert, user]
    random.Random(7).shuffle(extra)
    assert verify_peer_chain(trust, (proxy, *extra)) == (proxy, user, intermediate, pki.ca.cert)


# --- refused ----------------------------------------------------------------------------------


def test_a_certificate_of_an_untrusted_ca_is_refused(trust: TrustStore, tmp_path) -> None:
    rogue = GridPKI.make(tmp_path / "rogue", org="Rogue Grid")
    with pytest.raises(AuthenticationFailed, match=r"/O=Rogue Grid/OU=Users/CN=Jane Doe is not issued by a CA "
                                                   r"trusted in"):
        verify_peer_chain(trust, rogue.python_proxy().chain)
    # sending the untrusted root along does not make it trusted
    with pytest.raises(AuthenticationFailed, match="not issued by a CA trusted"):
        verify_peer_chain(trust, (*rogue.python_proxy().chain, rogue.ca.cert))


def test_an_expired_certificate_or_proxy_is_refused(pki: GridPKI, trust: TrustStore) -> None:
    late = pki.ca.issue(name("Users", "Late"), lifetime=-HOUR)
    with pytest.raises(CredentialExpired, match="the certificate .*CN=Late expired at"):
        verify_peer_chain(trust, (late.certificate,))
    with pytest.raises(CredentialExpired, match="the proxy .*CN=Jane Doe/CN=\\d+ expired at"):
        verify_peer_chain(trust, pki.python_proxy(expired=True).chain)
    early = make_cert(name("Users", "Early"), pki.ca.cert.subject, pki.ca.key, ca=False, start=NOW + HOUR)
    with pytest.raises(CredentialExpired, match="not valid before"):
        verify_peer_chain(trust, (early,))


def test_a_forged_signature_is_refused(pki: GridPKI, trust: TrustStore) -> None:
    # a CA of the same name as the trusted one, with its own key
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = make_cert(name("Users", "Jane Doe"), pki.ca.cert.subject, forger, ca=False)
    with pytest.raises(AuthenticationFailed, match="signature on the certificate .*CN=Jane Doe does not verify"):
        verify_peer_chain(trust, (forged,))
    # a proxy that claims the user as its issuer but was signed by another key
    proxy = proxy_of(pki.user.certificate, "42")
    with pytest.raises(AuthenticationFailed, match="signature on the proxy .*CN=42 does not verify"):
        verify_peer_chain(trust, (proxy, pki.user.certificate))
    # a forged copy of the root sent along changes nothing: the store's CA is the one that counts
    fake_root = make_cert(pki.ca.cert.subject, pki.ca.cert.subject, forger, ca=True, cert_sign=True)
    with pytest.raises(AuthenticationFailed, match="does not verify"):
        verify_peer_chain(trust, (forged, fake_root))


def test_a_certificate_issued_by_a_non_ca_is_refused(pki: GridPKI, trust: TrustStore,
                                                     intermediate: x509.Certificate) -> None:
    # the user's own certificate signing an end-entity certificate that is no proxy
    user = make_cert(name("Users", "Ann"), intermediate.subject, _KEY, ca=False)
    fake = make_cert(name("Users", "Ann", "Someone"), user.subject, _KEY, ca=False)
    with pytest.raises(AuthenticationFailed, match="CN=Someone is issued by .*CN=Ann, which is not a CA"):
        verify_peer_chain(trust, (fake, user, intermediate))
    # an intermediate without basicConstraints is not a CA either
    bare = make_cert(name("Bare CA"), pki.ca.cert.subject, pki.ca.key)
    leaf = make_cert(name("Users", "Bob"), bare.subject, _KEY, ca=False)
    with pytest.raises(AuthenticationFailed, match="issued by .*CN=Bare CA, which is not a CA"):
        verify_peer_chain(trust, (leaf, bare))
    # a CA whose key usage does not allow certificate signing
    nosign = make_cert(name("No Sign CA"), pki.ca.cert.subject, pki.ca.key, ca=True, cert_sign=False)
    leaf = make_cert(name("Users", "Cy"), nosign.subject, _KEY, ca=False)
    with pytest.raises(AuthenticationFailed, match="No Sign CA may not sign certificates"):
        verify_peer_chain(trust, (leaf, nosign))


def test_proxy_rules_are_kept(pki: GridPKI, trust: TrustStore, intermediate: x509.Certificate) -> None:
    user = make_cert(name("Users", "Ann"), intermediate.subject, _KEY, ca=False)
    # a proxy signed by a CA directly
    direct = proxy_of(intermediate, "7")
    with pytest.raises(AuthenticationFailed, match="is signed by the CA .*Intermediate CA"):
        verify_peer_chain(trust, (direct, intermediate))
    # the proxy path length: a proxy allowing no proxy below it
    p1 = proxy_of(user, "1", path_length=0)
    p2 = proxy_of(p1, "2")
    assert verify_peer_chain(trust, (p1, user, intermediate))[0] == p1
    with pytest.raises(AuthenticationFailed, match="CN=1 allows 0 proxies below it; the chain has 1"):
        verify_peer_chain(trust, (p2, p1, user, intermediate))
    # a legacy (GT2) proxy, which OpenSSL does not verify either
    legacy_name = x509.Name([*user.subject.rdns,
                             x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "proxy")])])
    legacy = make_cert(legacy_name, user.subject, _KEY)
    with pytest.raises(AuthenticationFailed, match="legacy or draft kind"):
        verify_peer_chain(trust, (legacy, user, intermediate))


def test_the_path_length_grid_proxy_init_sets_is_read_and_kept(pki: GridPKI, trust: TrustStore, proxy) -> None:
    assert proxy_path_limit(proxy.certificate) is None
    limited = Credential.from_pem(
        pki.grid_proxy_init(pki.root / "x509up_pathlen1", extra=("-path-length", "1")).read_bytes())
    assert proxy_path_limit(limited.certificate) == 1
    one = sign_proxy(limited.certificate, limited.key, _KEY.public_key())
    assert verify_peer_chain(trust, (one, *limited.chain))[0] == one
    two = sign_proxy(one, _KEY, _KEY.public_key())
    with pytest.raises(AuthenticationFailed, match="allows 1 proxies below it; the chain has 2"):
        verify_peer_chain(trust, (two, one, *limited.chain))


def test_ca_path_length_and_unknown_critical_extensions(pki: GridPKI, trust: TrustStore) -> None:
    top = make_cert(name("Top CA"), pki.ca.cert.subject, pki.ca.key, ca=True, path_length=0, cert_sign=True)
    below = make_cert(name("Below CA"), top.subject, _KEY, ca=True, cert_sign=True)
    leaf = make_cert(name("Users", "Dee"), below.subject, _KEY, ca=False)
    with pytest.raises(AuthenticationFailed, match="Top CA allows 0 CAs below it; the chain has 1"):
        verify_peer_chain(trust, (leaf, below, top))
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    strange = make_cert(name("Users", "Eve"), top.subject, _KEY, ca=False, extra=((odd, True),))
    with pytest.raises(AuthenticationFailed, match="critical extension 1.3.6.1.4.1.99999.1 that is not understood"):
        verify_peer_chain(trust, (strange, top))
    constrained = make_cert(name("Narrow CA"), pki.ca.cert.subject, pki.ca.key, ca=True, cert_sign=True,
                            extra=((x509.NameConstraints(permitted_subtrees=[x509.DirectoryName(name())],
                                                         excluded_subtrees=None), True),))
    inside = make_cert(name("Users", "Fay"), constrained.subject, _KEY, ca=False)
    with pytest.raises(AuthenticationFailed, match="Narrow CA sets name constraints"):
        verify_peer_chain(trust, (inside, constrained))


def sha1_signed(ca: CA, tmp: Path) -> x509.Certificate:
    """A certificate ``ca`` signs with SHA-1, made by the openssl tool (cryptography refuses to)."""
    pem = serialization.Encoding.PEM
    (tmp / "ca.pem").write_bytes(ca.cert.public_bytes(pem))
    (tmp / "ca.key").write_bytes(ca.key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    (tmp / "leaf.key").write_bytes(_KEY.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    csr = subprocess.run(["openssl", "req", "-new", "-key", str(tmp / "leaf.key"),
                          "-subj", "/O=Transfercore Test Grid/CN=Users/CN=Old"],
                         check=True, capture_output=True, timeout=30).stdout
    out = subprocess.run(["openssl", "x509", "-req", "-CA", str(tmp / "ca.pem"), "-CAkey", str(tmp / "ca.key"),
                          "-set_serial", "7", "-days", "1", "-sha1"],
                         input=csr, check=True, capture_output=True, timeout=30).stdout
    return x509.load_pem_x509_certificate(out)


def test_weak_keys_and_hashes_are_refused_at_the_security_level(pki: GridPKI, trust: TrustStore,
                                                                tmp_path: Path) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    small = (x509.CertificateBuilder().subject_name(name("Users", "Small")).issuer_name(pki.ca.cert.subject)
             .public_key(weak.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(NOW - HOUR).not_valid_after(NOW + HOUR).sign(pki.ca.key, hashes.SHA256()))
    with pytest.raises(AuthenticationFailed, match="CN=Small is too weak for TLS security level 2"):
        verify_peer_chain(trust, (small,))
    assert verify_peer_chain(trust, (small,), security_level=1)[0] == small
    sha1 = sha1_signed(pki.ca, tmp_path)
    assert sha1.signature_hash_algorithm is not None and sha1.signature_hash_algorithm.name == "sha1"
    with pytest.raises(AuthenticationFailed, match="CN=Old is signed with sha1, too weak"):
        verify_peer_chain(trust, (sha1,), security_level=1)


def test_a_renewed_root_of_the_same_name_is_found(tmp_path: Path) -> None:
    old, new = CA.make("Renewing Grid"), CA.make("Renewing Grid")
    digest = old.install(tmp_path / "certificates")
    (tmp_path / "certificates" / f"{digest}.1").write_bytes(new.cert.public_bytes(serialization.Encoding.PEM))
    trust = TrustStore.load(tmp_path / "certificates")
    for ca in (old, new):
        leaf = make_cert(name("Users", "Gil", org="Renewing Grid"), ca.cert.subject, ca.key, ca=False)
        assert verify_peer_chain(trust, (leaf,)) == (leaf, ca.cert)
        assert trust.check_chain((leaf, ca.cert)) == "/O=Renewing Grid/CN=Users/CN=Gil"
    stranger = CA.make("Renewing Grid")
    leaf = make_cert(name("Users", "Gil", org="Renewing Grid"), stranger.cert.subject, stranger.key, ca=False)
    with pytest.raises(AuthenticationFailed, match="does not verify"):
        verify_peer_chain(trust, (leaf, stranger.cert))


def test_a_ca_certificate_as_the_peer_and_an_empty_chain(pki: GridPKI, trust: TrustStore) -> None:
    with pytest.raises(AuthenticationFailed, match="presented the CA certificate"):
        verify_peer_chain(trust, (pki.ca.cert,))
    with pytest.raises(AuthenticationFailed, match="sent no certificate"):
        verify_peer_chain(trust, ())


def test_only_a_tls_client_may_leave_the_chain_to_us(pki: GridPKI, trust: TrustStore) -> None:
    with pytest.raises(ValueError, match="only a TLS client"):
        make_ssl_context(pki.python_proxy(), trust, server_side=True, purpose_check=False)


# --- through a real handshake on a data socket -------------------------------------------------


def handshake(acceptor_cred: Credential, initiator_cred: Credential, trust: TrustStore, own: str):
    """Authenticate a socket pair as a data channel with DCAU A: the initiator, as our server in a
    MODE E GET, is the TLS client; return both sides' outcomes (identity or exception)."""
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)
    state = DataProtection(dcau=Dcau.SELF, prot=Prot.PRIVATE)
    acceptor = SecureDataSocket(a, initiator=False, credential=acceptor_cred, trust=trust, protection=state,
                                own_identity=own)
    initiator = SecureDataSocket(b, initiator=True, credential=initiator_cred, trust=trust, protection=state,
                                 own_identity=own)

    def outcome(side: SecureDataSocket, sock: socket.socket) -> object:
        try:
            side.authenticate()
            return side.peer_identity
        except (AuthenticationFailed, OSError) as exc:  # the side refused first may see a reset
            sock.close()  # as the server does: the other side must not wait for a token
            return exc

    try:
        with ThreadPoolExecutor(2) as pool:
            acc = pool.submit(outcome, acceptor, a)
            ini = pool.submit(outcome, initiator, b)
            return acc.result(timeout=30), ini.result(timeout=30)
    finally:
        a.close()
        b.close()


def _credential(leaf: x509.Certificate, *chain: x509.Certificate) -> Credential:
    return Credential(chain=(leaf, *chain), key=_KEY)


def test_data_channel_accepts_a_client_auth_only_peer_as_tls_server(pki: GridPKI, trust: TrustStore) -> None:
    """Failed before with "unsuitable certificate purpose": the peer is the user's proxy acting as TLS server."""
    user = pki.ca.issue(name("Users", "Jane Doe"), usages=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    mine = Credential(chain=(sign_proxy(user.certificate, user.key, _KEY.public_key()), user.certificate), key=_KEY)
    theirs = Credential(chain=(sign_proxy(user.certificate, user.key, _KEY.public_key()), user.certificate),
                        key=_KEY)
    dn = "/O=Transfercore Test Grid/CN=Users/CN=Jane Doe"
    assert handshake(theirs, mine, trust, dn) == (dn, dn)


@pytest.mark.parametrize("case", ["untrusted", "same-name-ca", "expired", "forged", "non-ca-issuer"])
def test_data_channel_refuses_a_bad_tls_server_chain(pki: GridPKI, trust: TrustStore, case: str) -> None:
    user = pki.ca.issue(name("Users", "Jane Doe"), usages=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    mine = Credential(chain=(sign_proxy(user.certificate, user.key, _KEY.public_key()), user.certificate), key=_KEY)
    dn = "/O=Transfercore Test Grid/CN=Users/CN=Jane Doe"
    if case == "untrusted":
        rogue = CA.make("Rogue Grid")
        bad = _credential(make_cert(name("Users", "Jane Doe"), rogue.cert.subject, rogue.key, ca=False), rogue.cert)
        want = "not issued by a CA trusted in"
    elif case == "same-name-ca":
        rogue = CA.make("Transfercore Test Grid")  # the trusted CA's name, not its key
        bad = _credential(make_cert(name("Users", "Jane Doe"), rogue.cert.subject, rogue.key, ca=False), rogue.cert)
        want = "CN=Jane Doe does not verify"
    elif case == "expired":
        late = make_cert(name("Users", "Jane Doe"), pki.ca.cert.subject, pki.ca.key, ca=False,
                         start=NOW - 48 * HOUR, end=NOW - HOUR)
        bad = _credential(proxy_of(late, "9"), late)
        want = "expired at"
    elif case == "forged":
        bad = _credential(proxy_of(user.certificate, "9"), user.certificate)  # not signed by the user's key
        want = "CN=9 does not verify"
    else:
        other = make_cert(name("Users", "Jane Doe", "x"), user.certificate.subject, user.key, ca=False)
        bad = _credential(other, user.certificate)
        want = "which is not a CA"
    _, initiator = handshake(bad, mine, trust, dn)
    assert isinstance(initiator, AuthenticationFailed), initiator
    assert "data connection not authenticated" in str(initiator) and want in str(initiator), str(initiator)
