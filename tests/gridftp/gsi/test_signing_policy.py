from __future__ import annotations

import pytest

from transfercore.gridftp.gsi.errors import GSIConfigError
from transfercore.gridftp.gsi.signing_policy import SigningPolicy

POLICY = """
# EACL as the IGTF distributes it
access_id_CA      X509         '/C=US/O=Example/CN=Example CA'
pos_rights        globus        CA:sign
cond_subjects     globus       '"/C=US/O=Example/*"  "/C=US/O=Example Lab/CN=host?.lab"'

access_id_CA      X509         '/C=US/O=Other/CN=No Rights CA'
pos_rights        globus        CA:other
cond_subjects     globus       '"/*"'
"""


def test_patterns_and_rights() -> None:
    sp = SigningPolicy.parse(POLICY)
    ca = "/C=US/O=Example/CN=Example CA"
    assert sp.permits(ca, "/C=US/O=Example/OU=People/CN=Jane")
    assert sp.permits(ca, "/C=US/O=Example Lab/CN=host1.lab")
    assert not sp.permits(ca, "/C=US/O=Example Lab/CN=host10.lab")
    assert not sp.permits(ca, "/C=US/O=Examplex/CN=Jane")
    assert not sp.permits(ca, "/C=DE/O=Example/CN=Jane")
    # a CA without CA:sign signs nothing, whatever its patterns
    assert not sp.permits("/C=US/O=Other/CN=No Rights CA", "/C=US/O=Other/CN=x")
    # a CA the file does not name signs nothing
    assert not sp.permits("/C=US/O=Unknown/CN=CA", "/C=US/O=Example/CN=Jane")


def test_brackets_are_literal() -> None:
    sp = SigningPolicy.parse("access_id_CA X509 '/CN=CA'\npos_rights globus CA:sign\ncond_subjects globus '\"/CN=[a]*\"'")
    assert sp.permits("/CN=CA", "/CN=[a]bc")
    assert not sp.permits("/CN=CA", "/CN=abc")


@pytest.mark.parametrize(
    "text",
    ["access_id_CA X509", "cond_subjects globus '\"/*\"'", "access_id_CA X509 '/CN=CA' bogus_word x y",
     "access_id_CA X509 '/CN=CA\n", "access_id_CA LDAP '/CN=CA'"],
)
def test_malformed_policies_are_config_errors(text: str) -> None:
    with pytest.raises(GSIConfigError):
        SigningPolicy.parse(text)
