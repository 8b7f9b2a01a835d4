import pytest

from transfercore.gridftp.errors import BadArgument
from transfercore.gridftp.hostport import (
    HostPort,
    epsv_text,
    parse_eprt,
    parse_epsv_reply,
    parse_ftp_hostport,
    parse_spor,
    pasv_text,
)


def test_port_form_roundtrip():
    hp = parse_ftp_hostport("127,0,0,1,187,57")
    assert hp == HostPort("127.0.0.1", 187 * 256 + 57)
    assert pasv_text(hp) == "Entering Passive Mode (127,0,0,1,187,57)"
    assert parse_ftp_hostport("(127,0,0,1,187,57)") == hp


@pytest.mark.parametrize(
    "text", ["1,2,3,4,5", "256,0,0,1,1,1", "a,b,c,d,e,f", "127,0,0,1,0,0", "", "1,2,3,4,5,6,7"]
)
def test_port_form_rejects(text):
    with pytest.raises(BadArgument):
        parse_ftp_hostport(text)


def test_eprt():
    assert parse_eprt("|1|127.0.0.1|5282|") == HostPort("127.0.0.1", 5282)
    assert parse_eprt("!2!::1!80!") == HostPort("::1", 80)


@pytest.mark.parametrize(
    "text", ["|3|1.2.3.4|5|", "|1|::1|5|", "|1|1.2.3.4|99999|", "1|1.2.3.4|5|", "|1|1.2.3.4|5", "|1|x|5|"]
)
def test_eprt_rejects(text):
    with pytest.raises(BadArgument):
        parse_eprt(text)


def test_spor_and_epsv():
    assert parse_spor("127,0,0,1,1,2 127,0,0,1,1,3") == (
        HostPort("127.0.0.1", 258),
        HostPort("127.0.0.1", 259),
    )
    with pytest.raises(BadArgument):
        parse_spor("   ")
    assert parse_epsv_reply(epsv_text(47047)) == 47047
    with pytest.raises(BadArgument):
        parse_epsv_reply("Entering (|||x|)")


def test_ipv6_has_no_port_form():
    with pytest.raises(BadArgument):
        HostPort("::1", 5).ftp_form()
