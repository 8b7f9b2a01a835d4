"""End to end: the real globus-url-copy with a grid-proxy-init proxy against ``transfercore serve --gsi``."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from transfercore.testing.gsi_pki import GridPKI
from transfercore.testing.loopback import free_port, wait_port

from ..conftest import needs_globus

pytestmark = [pytest.mark.globus, needs_globus]


@pytest.fixture(scope="module")
def grid() -> Iterator[tuple[GridPKI, Path]]:
    # world-readable: the real server reads the CA directory after switching to the mapped account
    root = Path(tempfile.mkdtemp(prefix="tc-gsi-grid-"))
    root.chmod(0o755)
    pki = GridPKI.make(root)
    yield pki, pki.grid_proxy_init(root / "x509up")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def gsi_server(serve, root, grid):
    pki, _ = grid
    return serve("--root", str(root), "--host-cert", str(pki.host_cert), "--host-key", str(pki.host_key),
                 "--ca-dir", str(pki.ca_dir), "--gridmap", str(pki.gridmap), "--marker-interval", "0.3")


def guc(env: dict[str, str], *args: str, ok: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    proc = subprocess.run(["globus-url-copy", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env})
    if ok:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    else:
        assert proc.returncode != 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("payload") / "src.bin"
    p.write_bytes(os.urandom(3 * 1024 * 1024 + 4321))
    return p


def url(server, path: str) -> str:
    return f"gsiftp://127.0.0.1:{server.port}{path}"


@pytest.mark.parametrize(
    "flags",
    [(), ("-nodcau",), ("-dcpriv",), ("-p", "2", "-fast"), ("-p", "2", "-fast", "-dcpriv")],
    ids=["stream-dcau", "stream-nodcau", "stream-dcpriv", "modee-p2", "modee-p2-dcpriv"],
)
def test_put_and_get_identical(gsi_server, root, grid, payload, tmp_path, flags) -> None:
    pki, proxy = grid
    env = pki.env(proxy)
    guc(env, *flags, f"file://{payload}", url(gsi_server, "/put.bin"))
    assert (root / "put.bin").read_bytes() == payload.read_bytes()
    back = tmp_path / "back.bin"
    guc(env, *flags, url(gsi_server, "/put.bin"), f"file://{back}")
    assert back.read_bytes() == payload.read_bytes()


def test_subject_missing_from_gridmap_is_refused_and_stores_nothing(serve, root, grid, payload, tmp_path):
    pki, proxy = grid
    other = tmp_path / "grid-mapfile"
    other.write_text('"/O=Transfercore Test Grid/OU=Users/CN=Somebody Else" someone\n')
    srv = serve("--root", str(root), "--host-cert", str(pki.host_cert), "--host-key", str(pki.host_key),
                "--ca-dir", str(pki.ca_dir), "--gridmap", str(other))
    proc = guc(pki.env(proxy), f"file://{payload}", url(srv, "/nope.bin"), ok=False)
    assert "has no entry in" in proc.stderr
    assert list(root.iterdir()) == []


def test_certificate_of_an_untrusted_ca_is_refused(gsi_server, root, grid, payload, tmp_path):
    pki, _ = grid
    rogue = GridPKI.make(tmp_path / "rogue", org="Rogue Grid")  # a CA the server does not trust
    proxy = rogue.grid_proxy_init(tmp_path / "rogue-proxy")
    # the client trusts both CAs, so only the server's judgement is tested
    both = tmp_path / "both-cas"
    both.mkdir()
    for d in (pki.ca_dir, rogue.ca_dir):
        for f in d.iterdir():
            (both / f.name).write_bytes(f.read_bytes())
    env = {"X509_USER_PROXY": str(proxy), "X509_CERT_DIR": str(both)}
    proc = guc(env, f"file://{payload}", url(gsi_server, "/rogue.bin"), ok=False)
    assert "not issued by a CA trusted" in proc.stderr
    assert list(root.iterdir()) == []


def test_expired_proxy_is_refused_saying_so(gsi_server, root, grid, payload, tmp_path):
    """The real client refuses an expired proxy itself; the server's own refusal is tested with a
    client that sends one anyway (test_server_gsi.py)."""
    pki, _ = grid
    expired = tmp_path / "expired-proxy"
    expired.write_bytes(pki.python_proxy(expired=True).to_pem())
    expired.chmod(0o600)
    proc = guc(pki.env(expired), f"file://{payload}", url(gsi_server, "/late.bin"), ok=False)
    assert re.search(r"CN=Jane Doe/CN=\d+\s+expired \d+ minutes ago", proc.stderr), proc.stderr
    assert list(root.iterdir()) == []


@pytest.fixture
def real_gsi_server(grid, tmp_path: Path):
    pki, _ = grid
    port = free_port()
    pidfile = tmp_path / "real.pid"
    pki.start_real_server(port, pidfile, tmp_path / "real.log")
    wait_port(port)
    yield port
    try:
        os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)
    except (OSError, ValueError):
        pass


@pytest.mark.parametrize("flags", [(), ("-p", "2", "-fast", "-dcpriv")], ids=["stream-dcau", "modee-p2-dcpriv"])
def test_third_party_between_the_real_server_and_ours(gsi_server, real_gsi_server, root, grid, payload, request,
                                                       flags) -> None:
    pki, proxy = grid
    env = pki.env(proxy)
    # the real server reads and writes as the mapped account, nobody: a directory it can reach
    shared = Path(tempfile.mkdtemp(prefix="tc-gsi-real-"))
    request.addfinalizer(lambda: shutil.rmtree(shared, ignore_errors=True))
    shared.chmod(0o777)
    src = shared / "src.bin"
    src.write_bytes(payload.read_bytes())
    src.chmod(0o644)
    real = f"gsiftp://127.0.0.1:{real_gsi_server}"
    # real server -> ours: our server authenticates the real server's data channel by DCAU
    guc(env, *flags, f"{real}{src}", url(gsi_server, "/from-real.bin"))
    assert (root / "from-real.bin").read_bytes() == payload.read_bytes()
    # ours -> real server
    guc(env, *flags, url(gsi_server, "/from-real.bin"), f"{real}{shared}/back.bin")
    assert (shared / "back.bin").read_bytes() == payload.read_bytes()


@pytest.fixture(scope="module")
def client_auth_grid() -> Iterator[tuple[GridPKI, Path]]:
    """A grid whose user certificate says extendedKeyUsage=clientAuth only, as grid user certificates
    commonly do: by the letter of OpenSSL's purpose check it may not act as a TLS server."""
    root = Path(tempfile.mkdtemp(prefix="tc-gsi-clientauth-"))
    root.chmod(0o755)
    pki = GridPKI.make(root, user_usages=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    yield pki, pki.grid_proxy_init(root / "x509up")
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize(
    "flags",
    [(), ("-p", "2", "-fast"), ("-p", "2", "-fast", "-dcpriv"), ("-dcpriv",)],
    ids=["stream-dcau", "modee-p2", "modee-p2-dcpriv", "stream-dcpriv"],
)
def test_get_with_a_client_auth_only_user_certificate(serve, root, client_auth_grid, payload, tmp_path,
                                                      flags) -> None:
    """In a MODE E GET our server connects to the client's data port, so on the data channel it is the
    TLS client and the user's proxy the TLS server; GSI (as Globus) does not hold the certificate's
    purpose against it, and neither may we."""
    pki, proxy = client_auth_grid
    srv = serve("--root", str(root), "--host-cert", str(pki.host_cert), "--host-key", str(pki.host_key),
                "--ca-dir", str(pki.ca_dir), "--gridmap", str(pki.gridmap))
    shutil.copyfile(payload, root / "f.bin")
    back = tmp_path / "back.bin"
    guc(pki.env(proxy), *flags, url(srv, "/f.bin"), f"file://{back}")
    assert back.read_bytes() == payload.read_bytes()
    # and the other direction, where the user's proxy is the data channel's TLS client
    guc(pki.env(proxy), *flags, f"file://{payload}", url(srv, "/put.bin"))
    assert (root / "put.bin").read_bytes() == payload.read_bytes()


@pytest.fixture
def real_client_auth_server(client_auth_grid, tmp_path: Path):
    pki, _ = client_auth_grid
    port = free_port()
    pidfile = tmp_path / "real.pid"
    pki.start_real_server(port, pidfile, tmp_path / "real.log")
    wait_port(port)
    yield port
    try:
        os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)
    except (OSError, ValueError):
        pass


def test_third_party_to_the_real_server_with_a_client_auth_only_user_certificate(
        serve, real_client_auth_server, root, client_auth_grid, payload, request) -> None:
    """Ours sending MODE E to the real server: our side connects, so it checks, as TLS client, the
    chain of the credential the client delegated to the real server."""
    pki, proxy = client_auth_grid
    srv = serve("--root", str(root), "--host-cert", str(pki.host_cert), "--host-key", str(pki.host_key),
                "--ca-dir", str(pki.ca_dir), "--gridmap", str(pki.gridmap))
    shared = Path(tempfile.mkdtemp(prefix="tc-gsi-real-"))
    request.addfinalizer(lambda: shutil.rmtree(shared, ignore_errors=True))
    shared.chmod(0o777)
    shutil.copyfile(payload, root / "f.bin")
    guc(pki.env(proxy), "-p", "2", "-fast", "-dcpriv", url(srv, "/f.bin"),
        f"gsiftp://127.0.0.1:{real_client_auth_server}{shared}/back.bin")
    assert (shared / "back.bin").read_bytes() == payload.read_bytes()
