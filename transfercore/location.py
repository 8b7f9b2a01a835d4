"""Parsed URLs: which driver, which authority, which path, which options.

Accepted forms::

    posix:///abs/path            a local file through the posix driver
    file:///abs/path             the same
    /abs/path, rel/path          a plain local path means posix
    mock://store/path?lie=...    driver "mock", authority "store", options
    hpss:///abs/path?segment=1G

Options are URL query parameters; the registry validates them against the
driver's declared options.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping

import attrs

from .errors import LocationError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
#: Schemes that are other names for a driver.
ALIASES = {"file": "posix"}


def _freeze(
    options: Mapping[str, str] | Iterable[tuple[str, str]],
) -> tuple[tuple[str, str], ...]:
    if isinstance(options, Mapping):
        return tuple(sorted(options.items()))
    return tuple(options)


@attrs.frozen
class Location:
    """A parsed URL."""

    driver: str
    path: str
    authority: str = ""
    options: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_freeze)

    @property
    def option_map(self) -> dict[str, str]:
        return dict(self.options)

    def with_path(self, path: str) -> Location:
        return attrs.evolve(self, path=path)

    def __str__(self) -> str:
        query = f"?{urllib.parse.urlencode(self.options)}" if self.options else ""
        return f"{self.driver}://{self.authority}{urllib.parse.quote(self.path)}{query}"


def parse_location(text: str) -> Location:
    """Parse a URL or a plain local path; raise :class:`LocationError` on anything unclear."""
    if not isinstance(text, str) or not text.strip():
        raise LocationError("empty location; give a path or a URL such as posix:///data/file")
    if "\x00" in text:
        raise LocationError(f"location {text!r} contains a NUL byte")
    match = _SCHEME.match(text)
    if not match:
        if "?" in text:
            raise LocationError(
                f"location {text!r}: options need a URL; write posix://{os.path.abspath(text.split('?')[0])}?..."
            )
        return Location("posix", os.path.abspath(text))
    scheme = match.group(1).lower()
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - parsing the port is what finds a bad one
    except ValueError as exc:
        raise LocationError(f"location {text!r} is not a valid URL ({exc})", hint="e.g. posix:///data/file") from None
    if parts.fragment:
        raise LocationError(f"location {text!r} has a fragment ('#{parts.fragment}'); remove it")
    path = urllib.parse.unquote(parts.path)
    if not path:
        raise LocationError(f"location {text!r} has no path; expected e.g. {scheme}:///dir/file")
    if not path.startswith("/"):
        raise LocationError(f"location {text!r}: the path must be absolute")
    if "\x00" in path:
        raise LocationError(f"location {text!r} contains an encoded NUL byte")
    try:
        pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise LocationError(f"location {text!r} has malformed options {parts.query!r}; use ?name=value&name=value") from None
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise LocationError(f"location {text!r} gives option {name!r} twice")
        seen.add(name)
    return Location(
        driver=ALIASES.get(scheme, scheme),
        path=path,
        authority=parts.netloc,
        options=tuple(pairs),
    )
