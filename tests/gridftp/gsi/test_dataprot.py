from __future__ import annotations

import pytest

from transfercore.gridftp.gsi.dataprot import (
    DataProtection,
    Dcau,
    Prot,
    apply_dcau,
    apply_pbsz,
    apply_prot,
    for_gsi_session,
)
from transfercore.gridftp.gsi.errors import NotAuthorized

ME = "/O=Grid/CN=Jane"


def test_gsi_default_is_dcau_a_with_clear_data() -> None:
    st = for_gsi_session()
    assert (st.dcau, st.prot) == (Dcau.SELF, Prot.CLEAR)
    assert st.expected_peer(ME) == ME
    st.check_peer(ME, ME)
    with pytest.raises(NotAuthorized, match="not /O=Grid/CN=Jane as DCAU A requires"):
        st.check_peer(ME, "/O=Grid/CN=Mallory")


def test_dcau_commands() -> None:
    st = for_gsi_session()
    st2, code, text = apply_dcau(st, "N", can_authenticate=True)
    assert (code, text, st2.dcau, st2.expected_peer(ME)) == (200, "DCAU N.", Dcau.NONE, None)
    st3, code, text = apply_dcau(st2, "S /O=Grid/CN=host/gridftp.example.org", can_authenticate=True)
    assert (code, text, st3.expected_peer(ME)) == (200, "DCAU S.", "/O=Grid/CN=host/gridftp.example.org")
    assert apply_dcau(st, "S", can_authenticate=True)[1:] == (501, "DCAU S expected subject.")
    assert apply_dcau(st, "A extra", can_authenticate=True)[1] == 501
    assert apply_dcau(st, "AB", can_authenticate=True)[1] == 504
    assert apply_dcau(st, "X", can_authenticate=True)[1] == 501
    # without a GSI login (no credential), only DCAU N
    plain = DataProtection()
    assert apply_dcau(plain, "A", can_authenticate=False)[1] == 504
    assert apply_dcau(plain, "N", can_authenticate=False)[1] == 200


def test_prot_and_pbsz() -> None:
    st = for_gsi_session()
    st2, code, text = apply_prot(st, "p")
    assert (code, text, st2.prot, st2.wrapped) == (200, "Protection level set to P.", Prot.PRIVATE, True)
    assert apply_prot(st, "E")[1] == 536
    assert apply_prot(DataProtection(), "P")[1] == 536  # no data-channel authentication
    assert apply_prot(DataProtection(), "C")[1] == 200
    assert apply_pbsz(st, "1048576")[1:] == (200, "PBSZ=1048576")
    assert apply_pbsz(st, "4294967296")[1] == 501
    assert apply_pbsz(st, "-1")[1] == 501
