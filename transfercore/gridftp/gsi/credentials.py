"""The server's GSI setup: host credential, CA directory, grid-mapfile, at the Globus locations.

Each has an option and the environment variable Globus reads, then the
standard file: ``X509_USER_CERT``/``X509_USER_KEY`` or
``/etc/grid-security/hostcert.pem``/``hostkey.pem``; ``X509_CERT_DIR`` or
``/etc/grid-security/certificates``; ``GRIDMAP`` or
``/etc/grid-security/grid-mapfile``.
"""

from __future__ import annotations

import datetime
import os
import stat
from collections.abc import Mapping

import attrs

from .errors import GSIConfigError
from .gridmap import GridMap
from .proxy import Credential
from .trust import TrustStore

GRID_SECURITY = "/etc/grid-security"


@attrs.frozen
class GSIPaths:
    host_cert: str
    host_key: str
    ca_dir: str
    gridmap: str

    @classmethod
    def resolve(
        cls,
        *,
        host_cert: str | None = None,
        host_key: str | None = None,
        ca_dir: str | None = None,
        gridmap: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> GSIPaths:
        env = os.environ if environ is None else environ
        return cls(
            host_cert=host_cert or env.get("X509_USER_CERT") or f"{GRID_SECURITY}/hostcert.pem",
            host_key=host_key or env.get("X509_USER_KEY") or f"{GRID_SECURITY}/hostkey.pem",
            ca_dir=ca_dir or env.get("X509_CERT_DIR") or f"{GRID_SECURITY}/certificates",
            gridmap=gridmap or env.get("GRIDMAP") or f"{GRID_SECURITY}/grid-mapfile",
        )


@attrs.frozen
class GSIConfig:
    """Everything a GSI server side needs, loaded and checked once at start-up."""

    credential: Credential
    trust: TrustStore
    gridmap: GridMap
    paths: GSIPaths

    @classmethod
    def load(cls, paths: GSIPaths) -> GSIConfig:
        credential = load_host_credential(paths.host_cert, paths.host_key)
        return cls(credential=credential, trust=TrustStore.load(paths.ca_dir),
                   gridmap=GridMap.load(paths.gridmap), paths=paths)


def load_host_credential(cert_path: str, key_path: str) -> Credential:
    try:
        with open(cert_path, "rb") as f:
            cert_data = f.read()
    except OSError as exc:
        raise GSIConfigError(f"cannot read the host certificate {cert_path}: {exc.strerror}",
                             hint="pass --host-cert FILE or set X509_USER_CERT") from exc
    try:
        info = os.stat(key_path)
        with open(key_path, "rb") as f:
            key_data = f.read()
    except OSError as exc:
        raise GSIConfigError(f"cannot read the host key {key_path}: {exc.strerror}",
                             hint="pass --host-key FILE or set X509_USER_KEY") from exc
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise GSIConfigError(f"the host key {key_path} is readable by others than its owner",
                             hint=f"chmod 600 {key_path}")
    try:
        credential = Credential.from_pem(cert_data, key_data)
    except (ValueError, TypeError) as exc:
        raise GSIConfigError(f"the host certificate {cert_path} or key {key_path} is not usable PEM: {exc}") from exc
    if credential.certificate.public_key() != credential.key.public_key():
        raise GSIConfigError(f"the host key {key_path} does not belong to the certificate {cert_path}")
    if credential.not_after < datetime.datetime.now(datetime.UTC):
        raise GSIConfigError(f"the host certificate {cert_path} expired at {credential.not_after:%Y-%m-%d %H:%M} UTC")
    return credential
