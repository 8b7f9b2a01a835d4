"""Data-channel security settings: ``DCAU`` (who the data peer must be) and ``PROT``/``PBSZ``.

``DCAU N`` (no authentication), ``DCAU A`` (the data peer must hold the same
identity as the authenticated user: both ends use the user's credential, the
server the one the client delegated) and ``DCAU S <subject>`` (the peer must be
that subject).  ``PROT C`` sends data in the clear after authentication,
``PROT S`` (integrity) and ``PROT P`` (privacy) wrap it in GSI tokens; GSI's
wrap is a TLS record, integrity-protected and encrypted alike, so S and P
share one wire form.  ``PROT E`` (RFC 2228 confidential-only) has no GSI form
and is refused, as Globus refuses it.  A protection level other than C needs
data-channel authentication.

Replies follow the Globus server's wording.
"""

from __future__ import annotations

import enum

import attrs

from .errors import NotAuthorized


class Dcau(enum.Enum):
    NONE = "N"
    SELF = "A"
    SUBJECT = "S"


class Prot(enum.Enum):
    CLEAR = "C"
    SAFE = "S"
    PRIVATE = "P"


@attrs.frozen
class DataProtection:
    dcau: Dcau = Dcau.NONE
    subject: str | None = None
    prot: Prot = Prot.CLEAR
    pbsz: int | None = None

    @property
    def authenticated(self) -> bool:
        return self.dcau is not Dcau.NONE

    @property
    def wrapped(self) -> bool:
        return self.prot is not Prot.CLEAR

    def expected_peer(self, own_identity: str | None) -> str | None:
        """The identity the data-channel peer must prove, or None when DCAU is off."""
        if self.dcau is Dcau.SELF:
            return own_identity
        if self.dcau is Dcau.SUBJECT:
            return self.subject
        return None

    def check_peer(self, own_identity: str | None, peer: str) -> None:
        want = self.expected_peer(own_identity)
        if want is not None and peer != want:
            raise NotAuthorized(f"the data-channel peer is {peer}, not {want} as DCAU {self.dcau.value} requires")


def for_gsi_session() -> DataProtection:
    """The defaults of a GSI-authenticated session: ``DCAU A``, ``PROT C`` (as the Globus server)."""
    return DataProtection(dcau=Dcau.SELF)


def apply_dcau(state: DataProtection, arg: str, *, can_authenticate: bool) -> tuple[DataProtection, int, str]:
    words = arg.split(None, 1)
    if not words or len(words[0]) != 1:
        return state, 504, "Bad DCAU mode."
    mode = words[0].upper()
    if mode == "N":
        if len(words) != 1:
            return state, 501, "Bad Parameter to DCAU."
        return attrs.evolve(state, dcau=Dcau.NONE, subject=None, prot=Prot.CLEAR), 200, "DCAU N."
    if mode not in ("A", "S"):
        return state, 501, "Bad DCAU mode."
    if not can_authenticate:
        return state, 504, "DCAU needs a GSI login with a delegated credential; use DCAU N."
    if mode == "A":
        if len(words) != 1:
            return state, 501, "Bad Parameter to DCAU."
        return attrs.evolve(state, dcau=Dcau.SELF, subject=None), 200, "DCAU A."
    if len(words) != 2 or not words[1].strip():
        return state, 501, "DCAU S expected subject."
    return attrs.evolve(state, dcau=Dcau.SUBJECT, subject=words[1].strip()), 200, "DCAU S."


def apply_prot(state: DataProtection, arg: str) -> tuple[DataProtection, int, str]:
    level = arg.strip().upper()
    if level not in ("C", "S", "P"):
        return state, 536, f"{arg.strip() or '(none)'} protection level not supported."
    if level != "C" and not state.authenticated:
        return state, 536, f"{level} protection level needs data-channel authentication (DCAU A or S)."
    return attrs.evolve(state, prot=Prot(level)), 200, f"Protection level set to {level}."


def apply_pbsz(state: DataProtection, arg: str) -> tuple[DataProtection, int, str]:
    text = arg.strip()
    if not text.isdigit() or int(text) >= 1 << 32:
        return state, 501, f"Bad value for PBSZ: {text}"
    return attrs.evolve(state, pbsz=int(text)), 200, f"PBSZ={text}"


__all__ = ["DataProtection", "Dcau", "NotAuthorized", "Prot", "apply_dcau", "apply_pbsz", "apply_prot", "for_gsi_session"]
