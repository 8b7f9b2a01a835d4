from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from transfercore.gridftp.gsi import AuthenticationFailed, GSIConfigError, TrustStore
from transfercore.gridftp.gsi.credentials import load_host_credential
from transfercore.gridftp.gsi.names import oneline
from transfercore.testing.gsi_pki import CA, GridPKI


def _crl(ca: CA, signer: CA, serials: list[int]) -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    builder = x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject).last_update(now).next_update(
        now + datetime.timedelta(days=1))
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build())
    return builder.sign(signer.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def test_revoked_certificate_is_refused(pki: GridPKI, tmp_path: Path) -> None:
    ca_dir = tmp_path / "certificates"
    digest = pki.ca.install(ca_dir)
    (ca_dir / f"{digest}.r0").write_bytes(_crl(pki.ca, pki.ca, [pki.user.certificate.serial_number]))
    trust = TrustStore.load(ca_dir)
    with pytest.raises(AuthenticationFailed, match="CN=Jane Doe is revoked"):
        trust.check_chain((pki.user.certificate,))
    # a proxy of the revoked certificate is refused as well
    with pytest.raises(AuthenticationFailed, match="revoked"):
        trust.check_chain(pki.python_proxy().chain)


def test_crl_not_signed_by_its_ca_stops_loading(pki: GridPKI, tmp_path: Path) -> None:
    ca_dir = tmp_path / "certificates"
    digest = pki.ca.install(ca_dir)
    forger = CA.make("Forger")
    (ca_dir / f"{digest}.r0").write_bytes(_crl(pki.ca, forger, []))
    with pytest.raises(GSIConfigError, match="not signed by a CA of that directory"):
        TrustStore.load(ca_dir)


def test_identity_is_the_end_entity_under_the_proxies(pki: GridPKI, trust: TrustStore) -> None:
    proxy = pki.python_proxy()
    assert trust.check_chain(proxy.chain) == pki.user_dn == oneline(pki.user.certificate.subject)


def test_empty_ca_dir_and_unreadable_host_key(pki: GridPKI, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(GSIConfigError, match="no hash-named CA certificate"):
        TrustStore.load(tmp_path / "empty")
    key = tmp_path / "key.pem"
    key.write_bytes(pki.host_key.read_bytes())
    key.chmod(0o644)
    with pytest.raises(GSIConfigError, match="readable by others.*chmod 600"):
        load_host_credential(str(pki.host_cert), str(key))
    key.chmod(0o600)
    with pytest.raises(GSIConfigError, match="does not belong to the certificate"):
        load_host_credential(str(pki.user_cert), str(key))
