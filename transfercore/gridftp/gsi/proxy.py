"""Proxy certificates (RFC 3820, and the Globus legacy forms) and credential delegation.

A proxy is a short-lived certificate a user (or another proxy) signs for a new
key; its subject is the issuer's subject plus one ``CN``.  The identity a
proxy chain stands for is the subject of the first certificate in it that is
not a proxy: the end-entity certificate a CA issued.

Delegation, as GSI does it after the handshake: the acceptor makes a new key
and sends a certificate request; the initiator signs a proxy for that key with
its own credential and sends the certificate back; the acceptor keeps the new
certificate, the initiator's chain and the key as a credential it can use on
the user's behalf (for authenticated data channels and third-party transfers).
"""

from __future__ import annotations

import datetime
import enum
import secrets
from collections.abc import Sequence
from typing import TypeAlias

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

from .errors import AuthenticationFailed
from .names import oneline

PROXY_CERT_INFO = ObjectIdentifier("1.3.6.1.5.5.7.1.14")
PROXY_CERT_INFO_DRAFT = ObjectIdentifier("1.3.6.1.4.1.3536.1.222")
INHERIT_ALL = "1.3.6.1.5.5.7.21.1"
INDEPENDENT = "1.3.6.1.5.5.7.21.2"
GLOBUS_LIMITED = "1.3.6.1.4.1.3536.1.1.1.9"

_DER_OIDS = {
    INHERIT_ALL: bytes.fromhex("2b06010505071501"),
    GLOBUS_LIMITED: bytes.fromhex("2b060104019b5001010109"),
}


PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


class ProxyKind(enum.Enum):
    NONE = "end entity"
    IMPERSONATION = "impersonation proxy"
    LIMITED = "limited proxy"
    INDEPENDENT = "independent proxy"
    OTHER = "restricted proxy"


def proxy_kind(cert: x509.Certificate) -> ProxyKind:
    """What kind of proxy ``cert`` is, or ``ProxyKind.NONE``."""
    for oid in (PROXY_CERT_INFO, PROXY_CERT_INFO_DRAFT):
        try:
            ext = cert.extensions.get_extension_for_oid(oid)
        except x509.ExtensionNotFound:
            continue
        value = ext.value
        raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
        language = _policy_language(raw)
        return {
            INHERIT_ALL: ProxyKind.IMPERSONATION,
            GLOBUS_LIMITED: ProxyKind.LIMITED,
            INDEPENDENT: ProxyKind.INDEPENDENT,
        }.get(language or "", ProxyKind.OTHER)
    # the Globus legacy (GT2) proxy: no extension, subject = issuer + CN=proxy
    last = cert.subject.rdns[-1] if cert.subject.rdns else None
    if last is not None and cert.subject.rdns[:-1] == cert.issuer.rdns:
        cn = [a.value for a in last if a.oid == NameOID.COMMON_NAME]
        if cn == ["proxy"]:
            return ProxyKind.IMPERSONATION
        if cn == ["limited proxy"]:
            return ProxyKind.LIMITED
    return ProxyKind.NONE


def is_rfc3820_proxy(cert: x509.Certificate) -> bool:
    """Whether ``cert`` carries the RFC 3820 ProxyCertInfo extension: the only proxy form OpenSSL
    verifies, and so the only one a chain of either channel can hold."""
    try:
        cert.extensions.get_extension_for_oid(PROXY_CERT_INFO)
    except x509.ExtensionNotFound:
        return False
    return True


def proxy_path_limit(cert: x509.Certificate) -> int | None:
    """The pCPathLenConstraint of an RFC 3820 proxy (how many proxies it may sign below it), or None.

    Raises :class:`AuthenticationFailed` for a ProxyCertInfo value that does not parse: a limit
    that cannot be read must not be taken as no limit."""
    try:
        value = cert.extensions.get_extension_for_oid(PROXY_CERT_INFO).value
    except x509.ExtensionNotFound:
        return None
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
    try:
        tag, body, end = _read_tlv(raw, 0)
        if tag != 0x30 or end != len(raw):
            raise ValueError("not one SEQUENCE")
        pos = 0
        while pos < len(body):
            tag, inner, pos = _read_tlv(body, pos)
            if tag == 0x02:
                if not inner or inner[0] & 0x80:
                    raise ValueError("a negative path length")
                return int.from_bytes(inner, "big")
    except (ValueError, IndexError, AuthenticationFailed) as exc:
        raise AuthenticationFailed(f"the proxy {oneline(cert.subject)} has a malformed ProxyCertInfo") from exc
    return None


def end_entity(chain: Sequence[x509.Certificate]) -> x509.Certificate:
    """The first certificate of ``chain`` (leaf first) that is not a proxy."""
    for cert in chain:
        if proxy_kind(cert) is ProxyKind.NONE:
            return cert
    raise AuthenticationFailed("the certificate chain holds only proxies, no end-entity certificate")


def identity(chain: Sequence[x509.Certificate]) -> str:
    """The Globus identity (one-line DN of the end-entity certificate) of a chain."""
    return oneline(end_entity(chain).subject)


def check_proxy_chain(chain: Sequence[x509.Certificate]) -> None:
    """The proxy naming rule, checked ourselves as well: each proxy's subject is its issuer's plus one CN."""
    for cert, issuer in zip(chain, chain[1:], strict=False):
        if proxy_kind(cert) is ProxyKind.NONE:
            return
        rdns = cert.subject.rdns
        if cert.issuer != issuer.subject or rdns[:-1] != issuer.subject.rdns:
            raise AuthenticationFailed(
                f"the proxy {oneline(cert.subject)} is not named after its issuer {oneline(issuer.subject)}"
            )
        if [a.oid for a in rdns[-1]] != [NameOID.COMMON_NAME]:
            raise AuthenticationFailed(f"the proxy {oneline(cert.subject)} does not end with one CN")


# --- making proxies ------------------------------------------------------------


def proxy_cert_info(kind: ProxyKind = ProxyKind.IMPERSONATION) -> bytes:
    """The DER value of an RFC 3820 ProxyCertInfo extension without a path length limit."""
    language = GLOBUS_LIMITED if kind is ProxyKind.LIMITED else INHERIT_ALL
    oid = _DER_OIDS[language]
    policy = _tlv(0x30, _tlv(0x06, oid))
    return _tlv(0x30, policy)


def sign_proxy(
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    public_key: PublicKey,
    *,
    kind: ProxyKind = ProxyKind.IMPERSONATION,
    lifetime: datetime.timedelta = datetime.timedelta(hours=12),
    not_before: datetime.datetime | None = None,
) -> x509.Certificate:
    """An RFC 3820 proxy for ``public_key``, signed by ``issuer`` (an end-entity cert or a proxy)."""
    serial = secrets.randbits(31) | 1
    start = not_before or (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5))
    subject = x509.Name(
        list(issuer.subject.rdns) + [x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, str(serial))])]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(min(start + lifetime, issuer.not_valid_after_utc))
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=True,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.UnrecognizedExtension(PROXY_CERT_INFO, proxy_cert_info(kind)), critical=True)
    )
    return builder.sign(issuer_key, hashes.SHA256())



@attrs.frozen
class Credential:
    """A certificate chain (leaf first, no trust anchor needed) and the leaf's private key."""

    chain: tuple[x509.Certificate, ...]
    key: PrivateKey

    @property
    def certificate(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def identity(self) -> str:
        return identity(self.chain)

    @property
    def not_after(self) -> datetime.datetime:
        return min(c.not_valid_after_utc for c in self.chain)

    def to_pem(self) -> bytes:
        """The Globus proxy-file layout: leaf certificate, its key, then the rest of the chain."""
        out = [self.chain[0].public_bytes(serialization.Encoding.PEM)]
        out.append(
            self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        out.extend(c.public_bytes(serialization.Encoding.PEM) for c in self.chain[1:])
        return b"".join(out)

    @classmethod
    def from_pem(cls, data: bytes, key_data: bytes | None = None) -> Credential:
        """A credential from a proxy file (certs and key together) or a cert file and a key file."""
        chain = tuple(x509.load_pem_x509_certificates(data))
        key = serialization.load_pem_private_key(key_data if key_data is not None else data, password=None)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise AuthenticationFailed("only RSA and EC keys are supported")
        return cls(chain=chain, key=key)


# --- the delegation exchange ---------------------------------------------------


@attrs.frozen
class DelegationRequest:
    """The acceptor's half of delegation: a fresh key and the request it sends for it."""

    key: rsa.RSAPrivateKey
    request_der: bytes

    @classmethod
    def make(cls, bits: int = 2048) -> DelegationRequest:
        key = rsa.generate_private_key(public_exponent=65537, key_size=max(2048, bits))
        # Globus puts a placeholder subject in the request; the signer names the proxy itself
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "NULL SUBJECT NAME ENTRY")]))
            .sign(key, hashes.SHA256())
        )
        return cls(key=key, request_der=csr.public_bytes(serialization.Encoding.DER))

    def accept(self, cert_der: bytes, peer_chain: Sequence[x509.Certificate]) -> Credential:
        """The delegated credential, from the proxy the initiator signed and its own chain."""
        try:
            cert = x509.load_der_x509_certificate(cert_der)
        except ValueError as exc:
            raise AuthenticationFailed(f"the delegated certificate is not valid DER: {exc}") from exc
        if cert.public_key() != self.key.public_key():
            raise AuthenticationFailed("the delegated certificate is not for the key this side requested")
        if not peer_chain or cert.issuer != peer_chain[0].subject:
            raise AuthenticationFailed("the delegated certificate was not issued by the authenticated peer")
        cert.verify_directly_issued_by(peer_chain[0])
        chain = (cert, *[c for c in peer_chain if c.issuer != c.subject])
        check_proxy_chain(chain)
        return Credential(chain=chain, key=self.key)


def sign_request(request_der: bytes, credential: Credential, *, kind: ProxyKind = ProxyKind.LIMITED) -> bytes:
    """The initiator's half of delegation: a proxy for the request's key, as DER."""
    try:
        csr = x509.load_der_x509_csr(request_der)
    except ValueError as exc:
        raise AuthenticationFailed(f"the delegation request is not valid DER: {exc}") from exc
    if not csr.is_signature_valid:
        raise AuthenticationFailed("the delegation request's signature does not verify")
    public = csr.public_key()
    if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise AuthenticationFailed("the delegation request's key is neither RSA nor EC")
    cert = sign_proxy(credential.certificate, credential.key, public, kind=kind,
                      lifetime=credential.not_after - datetime.datetime.now(datetime.UTC))
    return cert.public_bytes(serialization.Encoding.DER)


def der_length(data: bytes) -> int | None:
    """The full length of the DER object at the start of ``data``, or None if the header is incomplete."""
    if len(data) < 2:
        return None
    first = data[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if count == 0 or count > 4:
        raise AuthenticationFailed("a delegation message has a malformed DER length")
    if len(data) < 2 + count:
        return None
    return 2 + count + int.from_bytes(data[2 : 2 + count], "big")


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _read_tlv(data: bytes, pos: int) -> tuple[int, bytes, int]:
    tag = data[pos]
    total = der_length(data[pos:])
    if total is None or pos + total > len(data):
        raise ValueError("truncated DER")
    first = data[pos + 1]
    head = 2 if first < 0x80 else 2 + (first & 0x7F)
    return tag, data[pos + head : pos + total], pos + total


def _policy_language(raw: bytes) -> str | None:
    """The policy language OID of a ProxyCertInfo value (SEQUENCE { INTEGER?, SEQUENCE { OID, ... } })."""
    try:
        tag, body, _ = _read_tlv(raw, 0)
        if tag != 0x30:
            return None
        pos = 0
        # the GT3 draft form puts the policy first and the path length after it; RFC 3820 the reverse
        while pos < len(body):
            tag, inner, pos = _read_tlv(body, pos)
            if tag == 0x30:
                otag, oid, _ = _read_tlv(inner, 0)
                return _decode_oid(oid) if otag == 0x06 else None
    except (ValueError, IndexError):
        return None
    return None


def _decode_oid(body: bytes) -> str:
    arcs: list[int] = []
    value = 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])
