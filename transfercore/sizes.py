"""Human sizes: ``64M``, ``1GiB``, ``4096``.

Both decimal-looking and binary suffixes mean powers of 1024, as in ``dd``'s
``bs=4M`` and as storage people read them; ``kB``/``MB``/``GB`` with an
explicit ``B`` after an upper-case letter are still binary, since a transfer
block of "64MB" is never meant as 64,000,000 bytes.
"""

from __future__ import annotations

import re

from .errors import SizeSyntaxError

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_PATTERN = re.compile(r"(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>[kmgtp]?)(?:i?b)?", re.IGNORECASE)
_MAX = 2**63 - 1


def parse_size(text: str | int, *, what: str = "size", minimum: int = 0) -> int:
    """Parse a human size into bytes; raise :class:`SizeSyntaxError` quoting the bad text."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = _PATTERN.fullmatch(str(text).strip())
        if not match:
            raise SizeSyntaxError(
                f"{what} {text!r} is not a size; use a number of bytes or a suffix, e.g. 64M, 1GiB"
            )
        number = float(match["num"]) if "." in match["num"] else int(match["num"])
        value = int(number * _UNITS[match["unit"].lower()])
    if value < minimum:
        raise SizeSyntaxError(f"{what} {text!r} is smaller than the minimum of {format_size(minimum)}")
    if value > _MAX:
        raise SizeSyntaxError(f"{what} {text!r} is too large")
    return value


def format_size(n: int | float) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
