"""Errors of the GSI layer, all rooted in :class:`transfercore.errors.TransferCoreError`.

Each one says what was refused and what the operator or user can do about it;
the server sends the message to the client in its ``530``/``535`` reply.
"""

from __future__ import annotations

from ...errors import TransferCoreError


class GSIError(TransferCoreError):
    """Base of the GSI errors."""


class GSIConfigError(GSIError, ValueError):
    """The server's own GSI setup (host credential, CA directory, grid-mapfile) is unusable."""


class AuthenticationFailed(GSIError):
    """The peer could not be authenticated: bad token, untrusted or expired certificate."""


class CredentialExpired(AuthenticationFailed):
    """A certificate in the peer's chain is outside its validity period."""


class NotAuthorized(GSIError):
    """The peer is authenticated but not allowed in (no grid-mapfile entry, wrong DCAU subject)."""


class ProtectionError(GSIError):
    """A wrapped (MIC/ENC/PROT) token failed to unwrap: damaged, replayed or forged."""
