"""A peer's certificate chain verified here instead of by OpenSSL, for the one place GSI needs it.

On a data channel the side that opens the TCP connection is the TLS client.
In a MODE E download that is the server, and its peer presents the user's
proxy, often of a certificate whose extendedKeyUsage says ``clientAuth`` only.
OpenSSL, verifying for a TLS client, holds the peer's chain to the "TLS
server" purpose and refuses it; Globus' verify callback lets exactly that
error pass, on both channels and in both roles.  Python's ``ssl`` can neither
set OpenSSL's purpose nor install a callback, so on that side the handshake
runs without OpenSSL's chain check (the handshake still proves that the peer
holds the key of the certificate it sent) and this module makes the checks
OpenSSL makes there, the purpose alone left out:

* a path from the leaf through the certificates the peer sent, in any order,
  to a self-signed CA of the trust store, the store's CAs tried first (all
  of one name: a renewed root keeps its name); a CA the peer sends counts
  only if it is identical to one of the store's;
* every signature along the path, and each issuer name equal to its issuer's subject;
* every validity period, the CA's own included;
* the issuers: a CA-issued certificate's issuer is a CA (basicConstraints
  ``CA:TRUE``; only the self-signed root may go without) and may sign
  certificates (``keyCertSign`` if it has a keyUsage); an RFC 3820 proxy's
  issuer is not a CA and may sign (``digitalSignature``); a proxy is no CA
  and names no alternative names;
* the path length limits of basicConstraints and of proxies;
* no critical extension OpenSSL would not understand, and no name constraints
  (OpenSSL applies them; here a CA that sets them is refused rather than half-checked);
* a leaf keyUsage, if any, that allows the TLS key exchange;
* the TLS context's security level: keys and (below the root) signature
  hashes at least as strong as it requires (at the default level 2, RSA of
  2048 bits, no SHA-1 or MD5).

The GSI rules follow, exactly as for a chain OpenSSL verified:
:meth:`~.trust.TrustStore.check_chain` (signing policies, CRLs, proxy names, identity).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtensionOID

from .errors import AuthenticationFailed
from .names import oneline
from .proxy import PROXY_CERT_INFO, ProxyKind, is_rfc3820_proxy, proxy_kind, proxy_path_limit
from .trust import TrustStore, expired_error

#: certificates in one path, proxies included (OpenSSL allows 100; a GSI path is rarely past 6)
MAX_DEPTH = 32

# what OpenSSL's X509_supported_extension understands, less what this module does not evaluate
_UNDERSTOOD_CRITICAL = frozenset({
    ExtensionOID.BASIC_CONSTRAINTS,
    ExtensionOID.KEY_USAGE,
    ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    ExtensionOID.CERTIFICATE_POLICIES,
    ExtensionOID.CRL_DISTRIBUTION_POINTS,
    ExtensionOID.POLICY_CONSTRAINTS,
    ExtensionOID.POLICY_MAPPINGS,
    ExtensionOID.INHIBIT_ANY_POLICY,
    ExtensionOID.OCSP_NO_CHECK,
    PROXY_CERT_INFO,
})


def verify_peer_chain(
    trust: TrustStore, presented: Sequence[x509.Certificate], *, security_level: int = 2,
    now: datetime.datetime | None = None,
) -> tuple[x509.Certificate, ...]:
    """The verified path, leaf first and the trusted root last, of the chain a peer sent (leaf first).

    Raises :class:`AuthenticationFailed` (:class:`CredentialExpired` for validity) saying which
    certificate failed which rule."""
    if not presented:
        raise AuthenticationFailed("the peer sent no certificate")
    now = now or datetime.datetime.now(datetime.UTC)
    level = max(0, min(security_level, len(_LEVEL_BITS) - 1))
    path = _build_path(trust, presented, level)
    for cert in path:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise expired_error(cert, now)
    for depth, cert in enumerate(path):
        _check_extensions(cert, issuing=depth > 0)
    _check_issuers(path)
    _check_path_lengths(path)
    _check_leaf_usage(path[0])
    _check_key_strength(path, level)
    return path


# --- the path -------------------------------------------------------------------------


def _build_path(trust: TrustStore, presented: Sequence[x509.Certificate], level: int) -> tuple[x509.Certificate, ...]:
    leaf = presented[0]
    if _is_trusted(trust, leaf):
        raise AuthenticationFailed(
            f"the peer presented the CA certificate {oneline(leaf.subject)} itself, not one issued by it"
        )
    pool = list(presented[1:])
    path = [leaf]
    while not (path[-1].subject == path[-1].issuer and _is_trusted(trust, path[-1])):
        if len(path) >= MAX_DEPTH:
            raise AuthenticationFailed(f"the peer's certificate chain is longer than {MAX_DEPTH} certificates")
        path.append(_issuer_of(trust, pool, path, level))
    return tuple(path)


def _issuer_of(trust: TrustStore, pool: list[x509.Certificate], path: list[x509.Certificate],
               level: int) -> x509.Certificate:
    cert = path[-1]
    algorithm, bits = _signature_strength(cert)
    if bits < _LEVEL_BITS[level]:
        raise AuthenticationFailed(
            f"the certificate {oneline(cert.subject)} is signed with {algorithm}, too weak for TLS security "
            f"level {level}"
        )
    candidates = [c for c in trust.cas_named(oneline(cert.issuer)) if c not in path]
    candidates += [c for c in pool if c.subject == cert.issuer and c not in path and c not in candidates
                   and not _untrusted_root(trust, c)]
    if not candidates:
        raise AuthenticationFailed(
            f"the certificate {oneline(cert.subject)} is not issued by a CA trusted in {trust.directory}",
            hint="install its CA (and signing policy) in the CA directory, or use a certificate from a trusted CA",
        )
    for candidate in candidates:
        try:
            cert.verify_directly_issued_by(candidate)
        except (InvalidSignature, ValueError, TypeError):
            continue
        return candidate
    proxy = is_rfc3820_proxy(cert)
    raise AuthenticationFailed(
        f"the signature on the {'proxy' if proxy else 'certificate'} {oneline(cert.subject)} does not verify "
        f"with the key of {oneline(cert.issuer)}: it is forged or damaged",
        hint="make a new proxy with grid-proxy-init" if proxy else None,
    )


def _is_trusted(trust: TrustStore, cert: x509.Certificate) -> bool:
    return cert in trust.cas_named(oneline(cert.subject))


def _untrusted_root(trust: TrustStore, cert: x509.Certificate) -> bool:
    """A self-signed certificate the store does not hold: a dead end, however it is named.
    (A self-issued CA certificate signed by another key, as at a CA's key rollover, is not one.)"""
    if cert.subject != cert.issuer or _is_trusted(trust, cert):
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


# --- each certificate -------------------------------------------------------------------


def _extensions(cert: x509.Certificate) -> x509.Extensions:
    try:
        return cert.extensions
    except ValueError as exc:  # duplicated or undecodable extensions
        raise AuthenticationFailed(f"the certificate {oneline(cert.subject)} has malformed extensions: {exc}") from exc


def _check_extensions(cert: x509.Certificate, *, issuing: bool) -> None:
    for ext in _extensions(cert):
        if ext.oid == ExtensionOID.NAME_CONSTRAINTS and issuing:
            raise AuthenticationFailed(
                f"the CA {oneline(cert.subject)} sets name constraints, which the data-channel check "
                "of a TLS server peer does not evaluate",
                hint="use DCAU N (globus-url-copy -nodcau) for data from this site",
            )
        if ext.critical and ext.oid not in _UNDERSTOOD_CRITICAL:
            raise AuthenticationFailed(
                f"the certificate {oneline(cert.subject)} has a critical extension "
                f"{ext.oid.dotted_string} that is not understood"
            )


def _basic_ca(cert: x509.Certificate) -> bool | None:
    """basicConstraints' CA flag, None without the extension."""
    try:
        return _extensions(cert).get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return None


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return _extensions(cert).get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _may_act_as_ca(cert: x509.Certificate) -> bool:
    """Whether OpenSSL's X509_check_ca would call ``cert`` a CA (any nonzero answer)."""
    ca = _basic_ca(cert)
    if ca is not None:
        return ca
    usage = _key_usage(cert)
    return (usage is not None and usage.key_cert_sign) or (
        cert.version is x509.Version.v1 and cert.subject == cert.issuer
    )


def _check_issuers(path: tuple[x509.Certificate, ...]) -> None:
    for depth, cert in enumerate(path[:-1]):
        issuer = path[depth + 1]
        subject, by = oneline(cert.subject), oneline(issuer.subject)
        usage = _key_usage(issuer)
        if is_rfc3820_proxy(cert):
            if _may_act_as_ca(cert):
                raise AuthenticationFailed(f"the proxy {subject} claims to be a CA")
            names = {e.oid for e in _extensions(cert)}
            if names & {ExtensionOID.SUBJECT_ALTERNATIVE_NAME, ExtensionOID.ISSUER_ALTERNATIVE_NAME}:
                raise AuthenticationFailed(f"the proxy {subject} names alternative names, which a proxy may not")
            if _may_act_as_ca(issuer):
                raise AuthenticationFailed(
                    f"the proxy {subject} is signed by the CA {by}; a proxy is signed by its user's "
                    "certificate or another proxy"
                )
            if usage is not None and not usage.digital_signature:
                raise AuthenticationFailed(f"the certificate {by} may not sign proxies (no digitalSignature)")
            continue
        if proxy_kind(cert) is not ProxyKind.NONE:
            raise AuthenticationFailed(
                f"the proxy {subject} is of the legacy or draft kind; only RFC 3820 proxies are accepted",
                hint="make an RFC 3820 proxy (grid-proxy-init makes one by default)",
            )
        root = depth + 1 == len(path) - 1
        if not (_basic_ca(issuer) or (root and _basic_ca(issuer) is None and _may_act_as_ca(issuer))):
            raise AuthenticationFailed(
                f"the certificate {subject} is issued by {by}, which is not a CA (no basicConstraints CA:TRUE)"
            )
        if usage is not None and not usage.key_cert_sign:
            raise AuthenticationFailed(f"the CA {by} may not sign certificates (no keyCertSign)")


def _check_path_lengths(path: tuple[x509.Certificate, ...]) -> None:
    end_entity = next(i for i, cert in enumerate(path) if not is_rfc3820_proxy(cert))
    for depth in range(end_entity):
        limit = proxy_path_limit(path[depth])
        if limit is not None and depth > limit:
            raise AuthenticationFailed(
                f"the proxy {oneline(path[depth].subject)} allows {limit} proxies below it; the chain has {depth}"
            )
    for depth in range(end_entity + 1, len(path)):
        try:
            limit = _extensions(path[depth]).get_extension_for_class(x509.BasicConstraints).value.path_length
        except x509.ExtensionNotFound:
            continue
        if limit is None:
            continue
        # CAs between the end entity and this one; self-issued ones (key rollover) do not count
        below = sum(1 for c in path[end_entity + 1 : depth] if c.subject != c.issuer)
        if below > limit:
            raise AuthenticationFailed(
                f"the CA {oneline(path[depth].subject)} allows {limit} CAs below it; the chain has {below}"
            )


def _check_leaf_usage(leaf: x509.Certificate) -> None:
    usage = _key_usage(leaf)
    if usage is not None and not (usage.digital_signature or usage.key_encipherment or usage.key_agreement):
        raise AuthenticationFailed(f"the key usage of {oneline(leaf.subject)} does not allow it in TLS")


# OpenSSL's security levels 0-5, in bits of security a key or signature must offer
_LEVEL_BITS = (0, 80, 112, 128, 192, 256)
# bits of security of RSA and DSA moduli (NIST SP 800-57), as OpenSSL counts them
_MODULUS_BITS = ((15360, 256), (7680, 192), (3072, 128), (2048, 112), (1024, 80))


def _key_bits(key: object) -> int:
    if isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey):
        return next((bits for size, bits in _MODULUS_BITS if key.key_size >= size), 0)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.curve.key_size // 2
    if isinstance(key, ed25519.Ed25519PublicKey):
        return 128
    if isinstance(key, ed448.Ed448PublicKey):
        return 224
    return 0


def _signature_strength(cert: x509.Certificate) -> tuple[str, int]:
    """The hash of the issuer's signature on ``cert`` and the bits of security OpenSSL credits it with."""
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return cert.signature_algorithm_oid.dotted_string, 0
    if algorithm is None:  # EdDSA: as strong as the issuer's key, which is checked on its own
        return "EdDSA", 256
    # collision resistance (MD5 and SHA-1 are broken well below their size)
    return algorithm.name, {"md5": 39, "sha1": 63}.get(algorithm.name, algorithm.digest_size * 4)


def _check_key_strength(path: tuple[x509.Certificate, ...], level: int) -> None:
    for cert in path:
        if _key_bits(cert.public_key()) < _LEVEL_BITS[level]:
            raise AuthenticationFailed(
                f"the key of the certificate {oneline(cert.subject)} is too weak for TLS security level {level}"
            )
