"""``SIGHUP`` reads the CRLs again: a subject revoked by a new CRL is refused afterwards (real globus-url-copy)."""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from transfercore.testing.gsi_pki import CA, GridPKI

from ..conftest import Served, needs_globus

pytestmark = [pytest.mark.globus, needs_globus]


@pytest.fixture
def grid() -> Iterator[tuple[GridPKI, Path]]:
    # its own CA directory: the test adds a CRL to it
    root = Path(tempfile.mkdtemp(prefix="tc-gsi-reload-"))
    root.chmod(0o755)
    pki = GridPKI.make(root)
    yield pki, pki.grid_proxy_init(root / "x509up")
    shutil.rmtree(root, ignore_errors=True)


def crl(ca: CA, serials: list[int]) -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    builder = x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject).last_update(
        now - datetime.timedelta(minutes=1)).next_update(now + datetime.timedelta(days=1))
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build())
    return builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def put(env: dict[str, str], src: Path, srv: Served, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["globus-url-copy", f"file://{src}", f"gsiftp://127.0.0.1:{srv.port}/{name}"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, **env})


def test_a_subject_revoked_by_a_new_crl_is_refused_after_sighup(serve, root, grid, tmp_path):
    pki, proxy = grid
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(100_000))
    # the client trusts the CA from its own copy of the directory, which never gets the CRL (Globus
    # clients check their own certificate against the CRLs they find)
    client_ca = tmp_path / "client-certificates"
    shutil.copytree(pki.ca_dir, client_ca)
    env = {**pki.env(proxy), "X509_CERT_DIR": str(client_ca)}
    srv = serve("--root", str(root), "--host-cert", str(pki.host_cert), "--host-key", str(pki.host_key),
                "--ca-dir", str(pki.ca_dir), "--gridmap", str(pki.gridmap))
    before = put(env, src, srv, "before.bin")
    assert before.returncode == 0, before.stdout + before.stderr
    assert (root / "before.bin").read_bytes() == src.read_bytes()

    (digest,) = [p.stem for p in pki.ca_dir.glob("*.0")]
    (pki.ca_dir / f"{digest}.r0").write_bytes(crl(pki.ca, [pki.user.certificate.serial_number]))
    # without a reload the running server still trusts the certificate it loaded the CRLs for at start
    still = put(env, src, srv, "still.bin")
    assert still.returncode == 0, still.stdout + still.stderr

    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while "reload: configuration" not in srv.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "reload: configuration" in srv.log.read_text()

    after = put(env, src, srv, "after.bin")
    assert after.returncode != 0
    assert "revoked" in after.stdout + after.stderr
    assert not (root / "after.bin").exists()
