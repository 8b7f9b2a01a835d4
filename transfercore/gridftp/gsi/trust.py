"""The trusted CAs: a CA directory in the Globus layout, and the checks OpenSSL does not make.

The directory (``X509_CERT_DIR``, by default ``/etc/grid-security/certificates``)
holds each CA as ``<hash>.0`` (OpenSSL's subject hash, so OpenSSL finds it as a
``capath``), its ``<hash>.signing_policy`` and, optionally, its CRL as
``<hash>.r0``.  OpenSSL verifies signatures, validity periods and the proxy
rules (``VERIFY_ALLOW_PROXY_CERTS``), or :mod:`.pathcheck` where OpenSSL's
purpose check would be in the way; this module adds what GSI requires on
top: the signing policy of every CA in the chain, the CRLs, the proxy naming
rule, and the identity the chain stands for.
"""

from __future__ import annotations

import datetime
import os
import re
import ssl
from collections.abc import Sequence

import attrs
from cryptography import x509

from .errors import AuthenticationFailed, CredentialExpired, GSIConfigError
from .names import oneline
from .proxy import ProxyKind, check_proxy_chain, identity, proxy_kind
from .signing_policy import SigningPolicy

_HASHED = re.compile(r"^[0-9a-f]{8}\.(\d+)$")
_CRL = re.compile(r"^[0-9a-f]{8}\.r(\d+)$")


@attrs.frozen
class TrustStore:
    """The CA certificates, signing policies and CRLs of one CA directory."""

    directory: str
    cas: dict[str, x509.Certificate]
    policies: dict[str, SigningPolicy]
    crls: dict[str, x509.CertificateRevocationList]
    require_signing_policy: bool = True
    #: every CA certificate by subject, where ``cas`` keeps the first: a CA renewing its root under
    #: the same name has two (``<hash>.0`` and ``<hash>.1``), and a chain may lead to either
    same_name: dict[str, tuple[x509.Certificate, ...]] = attrs.field(factory=dict)

    def cas_named(self, dn: str) -> tuple[x509.Certificate, ...]:
        """The trusted CA certificates whose subject is ``dn`` (Globus one-line form)."""
        found = self.same_name.get(dn)
        if found:
            return found
        return (self.cas[dn],) if dn in self.cas else ()

    @classmethod
    def load(cls, directory: str | os.PathLike[str], *, require_signing_policy: bool = True) -> TrustStore:
        directory = os.fspath(directory)
        try:
            names = sorted(os.listdir(directory))
        except OSError as exc:
            raise GSIConfigError(
                f"cannot read the CA directory {directory}: {exc.strerror}",
                hint="pass --ca-dir DIR or set X509_CERT_DIR",
            ) from exc
        cas: dict[str, x509.Certificate] = {}
        same_name: dict[str, tuple[x509.Certificate, ...]] = {}
        policies: dict[str, SigningPolicy] = {}
        crls: dict[str, x509.CertificateRevocationList] = {}
        for name in names:
            path = os.path.join(directory, name)
            if _HASHED.match(name):
                for cert in _load_certs(path):
                    dn = oneline(cert.subject)
                    cas.setdefault(dn, cert)
                    if cert not in same_name.get(dn, ()):
                        same_name[dn] = (*same_name.get(dn, ()), cert)
                    policy_path = os.path.join(directory, name.split(".")[0] + ".signing_policy")
                    if dn not in policies and os.path.exists(policy_path):
                        with open(policy_path, encoding="utf-8") as f:
                            policies[dn] = SigningPolicy.parse(f.read(), source=policy_path)
            elif _CRL.match(name):
                crl = _load_crl(path)
                if crl is not None:
                    crls[oneline(crl.issuer)] = crl
        for issuer, crl in crls.items():
            signers = same_name.get(issuer, ())
            if not any(crl.is_signature_valid(ca.public_key()) for ca in signers):  # type: ignore[arg-type]
                raise GSIConfigError(
                    f"the CRL of {issuer} in {directory} is not signed by a CA of that directory",
                    hint="replace the CRL file (fetch-crl) or remove it",
                )
        if not cas:
            raise GSIConfigError(
                f"the CA directory {directory} holds no hash-named CA certificate (<hash>.0)",
                hint="install the CA certificates there, named by `openssl x509 -hash`",
            )
        return cls(directory=directory, cas=cas, policies=policies, crls=crls,
                   require_signing_policy=require_signing_policy, same_name=same_name)

    def configure(self, ctx: ssl.SSLContext) -> None:
        """Make ``ctx`` require and verify a peer certificate against this directory, proxies allowed."""
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.verify_flags |= ssl.VERIFY_ALLOW_PROXY_CERTS
        ctx.load_verify_locations(capath=self.directory)

    def check_chain(self, chain: Sequence[x509.Certificate], *, now: datetime.datetime | None = None) -> str:
        """Check a verified chain (leaf first) against the GSI rules; return its identity."""
        if not chain:
            raise AuthenticationFailed("the peer sent no certificate")
        now = now or datetime.datetime.now(datetime.UTC)
        for cert in chain:
            if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
                raise expired_error(cert, now)
        check_proxy_chain(chain)
        for cert in chain:
            if proxy_kind(cert) is not ProxyKind.NONE or cert.issuer == cert.subject:
                continue
            self._check_issued(cert)
        return identity(chain)

    def _check_issued(self, cert: x509.Certificate) -> None:
        issuer, subject = oneline(cert.issuer), oneline(cert.subject)
        policy = self.policies.get(issuer)
        if policy is None:
            if self.require_signing_policy:
                raise AuthenticationFailed(
                    f"the CA {issuer} has no signing policy in {self.directory}",
                    hint="install its <hash>.signing_policy file beside its certificate",
                )
        elif not policy.permits(issuer, subject):
            raise AuthenticationFailed(
                f"the signing policy of the CA {issuer} does not allow it to sign {subject}"
            )
        crl = self.crls.get(issuer)
        if crl is not None and crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            raise AuthenticationFailed(f"the certificate {subject} is revoked by its CA {issuer}")


def expired_error(cert: x509.Certificate, now: datetime.datetime) -> AuthenticationFailed:
    subject = oneline(cert.subject)
    what = "proxy" if proxy_kind(cert) is not ProxyKind.NONE else "certificate"
    if now > cert.not_valid_after_utc:
        return CredentialExpired(
            f"the {what} {subject} expired at {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC",
            hint="make a new proxy with grid-proxy-init" if what == "proxy" else "renew the certificate",
        )
    return CredentialExpired(
        f"the {what} {subject} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC",
        hint="check the clocks of client and server",
    )


def _load_certs(path: str) -> list[x509.Certificate]:
    try:
        with open(path, "rb") as f:
            data = f.read()
        return list(x509.load_pem_x509_certificates(data))
    except (OSError, ValueError):
        return []


def _load_crl(path: str) -> x509.CertificateRevocationList | None:
    try:
        with open(path, "rb") as f:
            return x509.load_pem_x509_crl(f.read())
    except (OSError, ValueError):
        return None
