"""The DSI options: the string after ``transfercore:`` in ``-dsi`` or ``load_dsi_module``.

Form: ``URL [name=value ...]``, separated by spaces (a URL holds no raw
space).  The URL names the driver and the directory clients see as ``/``::

    load_dsi_module transfercore:posix:///data log=/var/log/gridftp/transfercore.log
    -dsi 'transfercore:hpss:///home/proj?segment=256MiB markers=durable durable_interval=2'

Parsed without I/O, so a bad option fails the session with a clear message
before any storage is touched.
"""

from __future__ import annotations

import math
import re

import attrs

from transfercore.errors import LocationError, OptionError, TransferCoreError
from transfercore.location import Location, parse_location
from transfercore.sizes import parse_size

#: ``markers`` values: 111 restart markers from ``Writer.durable()``, or none at all.
MARKER_POLICIES = ("durable", "off")
KNOWN = ("log", "markers", "durable_interval", "spool", "max_spool", "entry_point")
#: ``entry_point=NAME=module:attr``: the driver's class as the registry resolved it at launch
_ENTRY_POINT = re.compile(r"([\w.+-]+)=([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")


@attrs.frozen
class DsiConfig:
    url: str
    location: Location
    #: The bridge's log file (chosen by the C part before Python starts).
    log: str | None = None
    markers: str = "durable"
    #: Seconds between ``durable()`` calls during an upload; ``None``: half the
    #: client's restart-marker interval (TREV RESTART, 5 s by default).
    durable_interval: float | None = None
    #: Directory for uploads of unknown size (no ALLO); ``None``: the system's temporary directory.
    spool: str | None = None
    #: At most this many bytes in an upload's spool (``None``: no limit).
    max_spool: int | None = None
    #: ``module:attr`` of the driver class, resolved through the registry by whoever
    #: started the server (:mod:`.launch`), so that sessions need not search the
    #: installed distributions' entry points each (:mod:`.opening`); ``None``: they do.
    entry_point: str | None = None

    def durable_period(self, marker_interval: float) -> float:
        if self.durable_interval is not None:
            return self.durable_interval
        return max(0.05, min(marker_interval / 2.0, 5.0))


def parse_config(text: str | None) -> DsiConfig:
    """Parse the DSI option string; raise :class:`OptionError` or :class:`LocationError`."""
    tokens = (text or "").split()
    if not tokens:
        raise OptionError(
            "the transfercore DSI needs a driver URL: load it as 'transfercore:posix:///data' "
            "(-dsi or load_dsi_module)",
        )
    url, rest = tokens[0], tokens[1:]
    if "=" in url.split("://", 1)[0]:
        raise OptionError(f"the first DSI option must be the driver URL, not {url!r}")
    try:
        location = parse_location(url)
    except LocationError as exc:
        raise LocationError(f"DSI driver URL: {exc}") from None
    values: dict[str, str] = {}
    for token in rest:
        name, sep, value = token.partition("=")
        if not sep or not name:
            raise OptionError(f"DSI option {token!r} is not name=value (known: {', '.join(KNOWN)})")
        if name not in KNOWN:
            raise OptionError(f"unknown DSI option {name!r} (known: {', '.join(KNOWN)})")
        if name in values:
            raise OptionError(f"DSI option {name!r} is given twice")
        values[name] = value
    markers = values.get("markers", "durable")
    if markers not in MARKER_POLICIES:
        raise OptionError(f"DSI option markers={markers!r}: use one of {', '.join(MARKER_POLICIES)}")
    interval: float | None = None
    if "durable_interval" in values:
        try:
            interval = float(values["durable_interval"])
        except ValueError:
            interval = math.nan
        if not (math.isfinite(interval) and 0.01 <= interval <= 3600):
            raise OptionError(
                f"DSI option durable_interval={values['durable_interval']!r}: give seconds from 0.01 to 3600"
            )
    max_spool: int | None = None
    if "max_spool" in values:
        try:
            max_spool = parse_size(values["max_spool"], what="DSI option max_spool", minimum=1)
        except (ValueError, TransferCoreError) as exc:
            raise OptionError(f"DSI option max_spool={values['max_spool']!r}: {exc}") from None
    entry_point: str | None = None
    if "entry_point" in values:
        match = _ENTRY_POINT.fullmatch(values["entry_point"])
        if match is None:
            raise OptionError(
                f"DSI option entry_point={values['entry_point']!r}: give NAME=module:attr, as "
                "'transfercore globus-server --site-config URL' prints it"
            )
        if match.group(1) != location.driver:
            raise OptionError(
                f"DSI option entry_point={values['entry_point']!r} is for the driver {match.group(1)!r}, "
                f"the URL names {location.driver!r}",
                hint="print the lines again with 'transfercore globus-server --site-config URL'",
            )
        entry_point = f"{match.group(2)}:{match.group(3)}"
    return DsiConfig(
        url=url,
        location=location,
        log=values.get("log") or None,
        markers=markers,
        durable_interval=interval,
        spool=values.get("spool") or None,
        max_spool=max_spool,
        entry_point=entry_point,
    )
