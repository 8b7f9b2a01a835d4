from __future__ import annotations

from pathlib import Path

import pytest

from transfercore.gridftp.gsi import TrustStore
from transfercore.gridftp.gsi.credentials import load_host_credential
from transfercore.gridftp.gsi.proxy import Credential
from transfercore.testing.gsi_pki import GridPKI


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> GridPKI:
    return GridPKI.make(tmp_path_factory.mktemp("grid"))


@pytest.fixture(scope="session")
def proxy_file(pki: GridPKI) -> Path:
    """A proxy from the real grid-proxy-init (the test fails, never skips, without it)."""
    return pki.grid_proxy_init(pki.root / "x509up_test")


@pytest.fixture(scope="session")
def proxy(proxy_file: Path) -> Credential:
    return Credential.from_pem(proxy_file.read_bytes())


@pytest.fixture(scope="session")
def trust(pki: GridPKI) -> TrustStore:
    return TrustStore.load(pki.ca_dir)


@pytest.fixture(scope="session")
def host(pki: GridPKI) -> Credential:
    return load_host_credential(str(pki.host_cert), str(pki.host_key))
