"""A throw-away grid PKI for tests and benchmarks: a CA in the Globus layout, host and user
certificates, a grid-mapfile, and proxies made by the real ``grid-proxy-init``.

Everything is real X.509: the CA directory is what ``X509_CERT_DIR`` points
to on a grid site (``<hash>.0`` named by ``openssl x509 -hash`` and
``<hash>.signing_policy``), and the Globus tools accept it as such.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..gridftp.gsi.names import oneline
from ..gridftp.gsi.proxy import Credential, ProxyKind, sign_proxy

_DAY = datetime.timedelta(days=1)


def _name(*parts: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.RelativeDistinguishedName([x509.NameAttribute(oid, v)]) for oid, v in parts])


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    os.chmod(path, 0o400)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@attrs.frozen
class CA:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey

    @property
    def dn(self) -> str:
        return oneline(self.cert.subject)

    @classmethod
    def make(cls, org: str) -> CA:
        key = _key()
        name = _name((NameOID.ORGANIZATION_NAME, org), (NameOID.COMMON_NAME, f"{org} CA"))
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - _DAY).not_valid_after(now + 30 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert=cert, key=key)

    def issue(self, subject: x509.Name, *, host: str | None = None,
              lifetime: datetime.timedelta = 10 * _DAY,
              usages: tuple[x509.ObjectIdentifier, ...] | None = None) -> Credential:
        """An end-entity certificate; ``usages`` gives it an extendedKeyUsage (a host certificate
        gets serverAuth and clientAuth), ``lifetime`` may be negative for an expired one."""
        key = _key()
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(self.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY).not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                         data_encipherment=True, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if host is not None:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(host), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            usages = usages or (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
        if usages is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        return Credential(chain=(builder.sign(self.key, hashes.SHA256()),), key=key)

    def install(self, ca_dir: Path, *, namespace: str | None = None) -> str:
        """Put this CA into ``ca_dir`` the Globus way; return its hash."""
        ca_dir.mkdir(parents=True, exist_ok=True)
        tmp = ca_dir / "incoming.pem"
        tmp.write_bytes(_pem(self.cert))
        digest = subprocess.run(["openssl", "x509", "-noout", "-hash", "-in", str(tmp)],
                                check=True, capture_output=True, text=True).stdout.strip()
        tmp.rename(ca_dir / f"{digest}.0")
        allowed = namespace or self.dn.rsplit("/CN=", 1)[0] + "/*"
        (ca_dir / f"{digest}.signing_policy").write_text(
            f"# signing policy of {self.dn}\n"
            f"access_id_CA   X509   '{self.dn}'\n"
            "pos_rights     globus CA:sign\n"
            f"cond_subjects  globus '\"{allowed}\"'\n"
        )
        return digest


@attrs.frozen
class GridPKI:
    """Paths of one test grid: trusted CA dir, host credential, a user, a proxy, a grid-mapfile."""

    root: Path
    ca: CA
    ca_dir: Path
    host_cert: Path
    host_key: Path
    user: Credential
    user_cert: Path
    user_key: Path
    gridmap: Path

    @property
    def user_dn(self) -> str:
        return oneline(self.user.certificate.subject)

    @classmethod
    def make(cls, root: Path, *, account: str = "griduser", org: str = "Transfercore Test Grid",
             user_usages: tuple[x509.ObjectIdentifier, ...] | None = None) -> GridPKI:
        """``user_usages=(ExtendedKeyUsageOID.CLIENT_AUTH,)`` makes the user certificate a typical grid
        user's: good for TLS clients only, by the letter of its extendedKeyUsage."""
        ca = CA.make(org)
        ca_dir = root / "certificates"
        ca.install(ca_dir)
        host = ca.issue(_name((NameOID.ORGANIZATION_NAME, org),
                              (NameOID.COMMON_NAME, "host/localhost")), host="localhost")
        user = ca.issue(_name((NameOID.ORGANIZATION_NAME, org),
                              (NameOID.ORGANIZATIONAL_UNIT_NAME, "Users"), (NameOID.COMMON_NAME, "Jane Doe")),
                         usages=user_usages)
        host_cert, host_key = root / "hostcert.pem", root / "hostkey.pem"
        host_cert.write_bytes(_pem(host.certificate))
        _write_key(host_key, host.key)
        user_cert, user_key = root / "usercert.pem", root / "userkey.pem"
        user_cert.write_bytes(_pem(user.certificate))
        _write_key(user_key, user.key)
        gridmap = root / "grid-mapfile"
        gridmap.write_text(f'"{oneline(user.certificate.subject)}" {account}\n')
        return cls(root=root, ca=ca, ca_dir=ca_dir, host_cert=host_cert, host_key=host_key, user=user,
                   user_cert=user_cert, user_key=user_key, gridmap=gridmap)

    def grid_proxy_init(self, out: Path, *, valid: str = "1:00", extra: tuple[str, ...] = ()) -> Path:
        """A proxy made by the real ``grid-proxy-init`` from the test user's certificate."""
        subprocess.run(
            ["grid-proxy-init", "-cert", str(self.user_cert), "-key", str(self.user_key), "-out", str(out),
             "-valid", valid, "-debug", *extra],
            check=True, capture_output=True, env={**os.environ, "X509_CERT_DIR": str(self.ca_dir)},
            timeout=60, stdin=subprocess.DEVNULL,
        )
        return out

    def python_proxy(self, *, expired: bool = False, kind: ProxyKind = ProxyKind.IMPERSONATION) -> Credential:
        """A proxy made in Python (for cases grid-proxy-init refuses to make, like an expired one)."""
        key = _key()
        start = datetime.datetime.now(datetime.UTC) - (2 * _DAY if expired else datetime.timedelta(minutes=5))
        cert = sign_proxy(self.user.certificate, self.user.key, key.public_key(), kind=kind,
                          lifetime=datetime.timedelta(hours=1), not_before=start)
        return Credential(chain=(cert, self.user.certificate), key=key)

    def start_real_server(self, port: int, pidfile: Path, log: Path, *, account: str = "nobody") -> Path:
        """The real ``globus-gridftp-server`` with GSI on 127.0.0.1:``port``, this grid's host credential,
        and a grid-mapfile mapping the test user to ``account``; returns that grid-mapfile."""
        gridmap = self.root / f"grid-mapfile-{account}"
        gridmap.write_text(f'"{self.user_dn}" {account}\n')
        env = {**os.environ, "X509_USER_CERT": str(self.host_cert), "X509_USER_KEY": str(self.host_key),
               "X509_CERT_DIR": str(self.ca_dir), "GRIDMAP": str(gridmap)}
        subprocess.run(
            ["globus-gridftp-server", "-S", "-pidfile", str(pidfile), "-p", str(port),
             "-control-interface", "127.0.0.1", "-data-interface", "127.0.0.1",
             "-d", "ERROR", "-l", str(log), "-c", "/dev/null"],
            env=env, check=True, timeout=30,
        )
        return gridmap

    def env(self, proxy: Path) -> dict[str, str]:
        """The environment a Globus client needs to use ``proxy`` against this grid."""
        return {"X509_USER_PROXY": str(proxy), "X509_CERT_DIR": str(self.ca_dir)}
