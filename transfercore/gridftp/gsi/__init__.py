"""GSI (Grid Security Infrastructure) for the GridFTP server, sans I/O.

* :mod:`.context` - the GSS security context over TLS memory BIOs, delegation included;
* :mod:`.control` - ``AUTH GSSAPI``/``ADAT``/``MIC``/``ENC`` on the control channel;
* :mod:`.events` - what that layer hands the session (light: a server without GSI loads only it);
* :mod:`.datasock` - the thin blocking shell that authenticates and protects data sockets;
* :mod:`.tokens` - base64 framing of tokens in commands and replies;
* :mod:`.trust` - the Globus CA directory, signing policies, CRLs;
* :mod:`.pathcheck` - a TLS server peer's chain verified without OpenSSL's purpose check (data channels);
* :mod:`.proxy` - RFC 3820 proxies, identities, delegation messages;
* :mod:`.gridmap` - the grid-mapfile;
* :mod:`.dataprot` - ``DCAU``, ``PROT``, ``PBSZ``;
* :mod:`.credentials` - the host credential and the Globus default locations.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .context import SecurityContext, make_ssl_context
    from .control import ControlSecurity
    from .credentials import GSIConfig, GSIPaths
    from .dataprot import DataProtection, Dcau, Prot
    from .errors import (
        AuthenticationFailed,
        CredentialExpired,
        GSIConfigError,
        GSIError,
        NotAuthorized,
        ProtectionError,
    )
    from .gridmap import GridMap
    from .proxy import Credential
    from .trust import TrustStore

# Imported on first use: the GridFTP session needs only ``dataprot``, and processes that
# embed the session (the Globus DSI) must not load ``ssl`` and ``cryptography`` for it.
_WHERE = {
    "SecurityContext": "context", "make_ssl_context": "context",
    "ControlSecurity": "control",
    "GSIConfig": "credentials", "GSIPaths": "credentials",
    "DataProtection": "dataprot", "Dcau": "dataprot", "Prot": "dataprot",
    "AuthenticationFailed": "errors", "CredentialExpired": "errors", "GSIConfigError": "errors",
    "GSIError": "errors", "NotAuthorized": "errors", "ProtectionError": "errors",
    "GridMap": "gridmap",
    "Credential": "proxy",
    "TrustStore": "trust",
}

__all__ = [
    "AuthenticationFailed", "ControlSecurity", "Credential", "CredentialExpired", "DataProtection", "Dcau",
    "GSIConfig", "GSIConfigError", "GSIError", "GSIPaths", "GridMap", "NotAuthorized", "Prot",
    "ProtectionError", "SecurityContext", "TrustStore", "make_ssl_context",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
