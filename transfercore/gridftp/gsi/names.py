"""Distinguished names in the Globus one-line form (``/C=US/O=Grid/CN=Jane Doe``).

Globus tools (grid-mapfile, signing policies, ``grid-proxy-info``) all speak this
form, which is OpenSSL's ``X509_NAME_oneline``: every attribute in certificate
order, OpenSSL short names, ``/`` between them.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

# OpenSSL's short names for the attributes grid certificates carry.
_SHORT = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.USER_ID: "UID",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.SURNAME: "SN",
    NameOID.GIVEN_NAME: "GN",
    NameOID.TITLE: "title",
    NameOID.STREET_ADDRESS: "street",
    NameOID.POSTAL_CODE: "postalCode",
}


def oneline(name: x509.Name) -> str:
    """``name`` as Globus writes it: ``/C=US/O=Grid/CN=Jane Doe``."""
    parts = []
    for rdn in name.rdns:
        for attr in rdn:
            key = _SHORT.get(attr.oid, attr.oid.dotted_string)
            value = attr.value if isinstance(attr.value, str) else attr.value.hex()
            parts.append(f"/{key}={value}")
    return "".join(parts)
