from __future__ import annotations

from pathlib import Path

import pytest

from transfercore.gridftp.gsi import GridMap, GSIConfigError, NotAuthorized

TEXT = r'''
# comment line
"/O=Grid/OU=Users/CN=Jane Doe" jane,jdoe
   "/O=Grid/CN=Quote \"Q\" Person"   quoter
"/O=Grid/CN=Hex\x41mple" hexer
/O=Grid/CN=unquoted bare
"/O=Grid/OU=Users/CN=Jane Doe" jane, shared
'''


def test_parse_quoting_escapes_and_merged_lines() -> None:
    gm = GridMap.parse(TEXT)
    assert gm.accounts("/O=Grid/OU=Users/CN=Jane Doe") == ("jane", "jdoe", "shared")
    assert gm.accounts('/O=Grid/CN=Quote "Q" Person') == ("quoter",)
    assert gm.accounts("/O=Grid/CN=HexAmple") == ("hexer",)
    assert gm.accounts("/O=Grid/CN=unquoted") == ("bare",)
    assert gm.accounts("/O=Grid/CN=Nobody") == ()


def test_map_default_requested_and_refused() -> None:
    gm = GridMap.parse(TEXT, source="gm")
    dn = "/O=Grid/OU=Users/CN=Jane Doe"
    assert gm.map(dn) == "jane"
    assert gm.map(dn, ":globus-mapping:") == "jane"
    assert gm.map(dn, "jdoe") == "jdoe"
    with pytest.raises(NotAuthorized, match="may not log in as 'root'"):
        gm.map(dn, "root")
    with pytest.raises(NotAuthorized, match="CN=Mallory has no entry in gm"):
        gm.map("/O=Grid/CN=Mallory")


@pytest.mark.parametrize("line", ['"/O=Grid/CN=open quote user', '"/O=Grid/CN=no user"', "/O=Grid/CN=alone"])
def test_malformed_lines_name_file_and_line(line: str) -> None:
    with pytest.raises(GSIConfigError, match=r"^f:2: "):
        GridMap.parse("# ok\n" + line, source="f")


def test_missing_file_says_which_option(tmp_path: Path) -> None:
    with pytest.raises(GSIConfigError, match="--gridmap"):
        GridMap.load(tmp_path / "absent")
