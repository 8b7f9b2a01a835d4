"""Host-port forms of PORT, EPRT, SPOR and of the PASV, EPSV and SPAS replies."""

from __future__ import annotations

import ipaddress

import attrs

from .errors import BadArgument


@attrs.frozen
class HostPort:
    host: str
    port: int

    def __attrs_post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise BadArgument(f"port {self.port} out of range 1-65535")

    def ftp_form(self) -> str:
        """``h1,h2,h3,h4,p1,p2`` (IPv4 only)."""
        try:
            addr = ipaddress.IPv4Address(self.host)
        except ValueError:
            raise BadArgument(f"{self.host!r} is not an IPv4 address; use EPSV/EPRT for IPv6") from None
        return ",".join([*(str(b) for b in addr.packed), str(self.port >> 8), str(self.port & 0xFF)])


def _byte(text: str, what: str) -> int:
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 3:
        raise BadArgument(f"{what} {text!r} is not a number 0-255")
    value = int(text)
    if value > 255:
        raise BadArgument(f"{what} {value} is larger than 255")
    return value


def parse_ftp_hostport(text: str) -> HostPort:
    """``h1,h2,h3,h4,p1,p2`` as in PORT and the 227 reply (parentheses allowed)."""
    stripped = text.strip().strip("()")
    parts = stripped.split(",")
    if len(parts) != 6:
        raise BadArgument(f"{text.strip()[:60]!r} is not h1,h2,h3,h4,p1,p2")
    nums = [_byte(p, "host-port field") for p in parts]
    host = ".".join(str(n) for n in nums[:4])
    return HostPort(host, nums[4] * 256 + nums[5])


def parse_eprt(text: str) -> HostPort:
    """``|1|127.0.0.1|5282|`` (RFC 2428); the first character is the delimiter."""
    stripped = text.strip()
    if len(stripped) < 2:
        raise BadArgument("EPRT needs |af|address|port|")
    delim = stripped[0]
    if delim.isalnum() or not (33 <= ord(delim) <= 126):
        raise BadArgument(f"EPRT delimiter {delim!r} must be a printable non-alphanumeric character")
    fields = stripped.split(delim)
    if len(fields) != 5 or fields[0] or fields[4]:
        raise BadArgument(f"{stripped[:60]!r} is not {delim}af{delim}address{delim}port{delim}")
    af, addr, port = fields[1:4]
    if af not in ("1", "2"):
        raise BadArgument(f"EPRT address family {af!r} is not 1 (IPv4) or 2 (IPv6)")
    try:
        parsed = ipaddress.IPv4Address(addr) if af == "1" else ipaddress.IPv6Address(addr)
    except ValueError:
        raise BadArgument(
            f"EPRT address {addr[:60]!r} is not an IPv{4 if af == '1' else 6} address"
        ) from None
    if not port.isascii() or not port.isdigit() or len(port) > 5:
        raise BadArgument(f"EPRT port {port[:10]!r} is not a number")
    return HostPort(str(parsed), int(port))


def parse_spor(text: str) -> tuple[HostPort, ...]:
    """SPOR: one or more space-separated ``h1,h2,h3,h4,p1,p2``."""
    items = text.split()
    if not items:
        raise BadArgument("SPOR needs at least one h1,h2,h3,h4,p1,p2")
    if len(items) > 64:
        raise BadArgument(f"SPOR lists {len(items)} addresses; at most 64 are accepted")
    return tuple(parse_ftp_hostport(item) for item in items)


def parse_epsv_reply(text: str) -> int:
    """The port of ``229 Entering Extended Passive Mode (|||47047|)``."""
    start, end = text.find("("), text.rfind(")")
    if start < 0 or end < start:
        raise BadArgument("EPSV reply has no (|||port|)")
    inner = text[start + 1 : end]
    if len(inner) < 5:
        raise BadArgument("EPSV reply has no (|||port|)")
    fields = inner.split(inner[0])
    if len(fields) != 5 or not fields[3].isdigit():
        raise BadArgument(f"EPSV reply {inner!r} is not (|||port|)")
    return HostPort("0.0.0.0", int(fields[3])).port


def pasv_text(hp: HostPort) -> str:
    return f"Entering Passive Mode ({hp.ftp_form()})"


def epsv_text(port: int) -> str:
    return f"Entering Extended Passive Mode (|||{port}|)"
