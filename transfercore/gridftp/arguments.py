"""Typed parsing of command arguments.  Every function raises :class:`BadArgument` (reply 501)."""

from __future__ import annotations

import attrs

from ..errors import RangeSyntaxError
from ..ranges import MAX_OFFSET, RangeSet, parse_stream_offset
from .errors import BadArgument

#: Parallelism beyond this many data connections is refused rather than honoured.
MAX_PARALLELISM = 64

CHECKSUM_ALGORITHMS = ("MD5", "ADLER32", "SHA1", "SHA256", "SHA512", "CRC32C")


def _number(text: str, what: str, *, maximum: int = MAX_OFFSET) -> int:
    text = text.strip()
    if not text or not text.isascii() or not text.isdigit() or len(text) > 19:
        raise BadArgument(f"{what} {text[:30]!r} is not a non-negative number")
    value = int(text)
    if value > maximum:
        raise BadArgument(f"{what} {value} is larger than {maximum}")
    return value


def parse_type(arg: str) -> str:
    """``A``, ``A N``, ``I`` or ``L 8``: returns 'A' or 'I'."""
    parts = arg.upper().split()
    if parts in (["A"], ["A", "N"]):
        return "A"
    if parts in (["I"], ["L", "8"]):
        return "I"
    raise BadArgument(f"'TYPE {arg}' unrecognized type; use TYPE I or TYPE A")


def parse_mode(arg: str) -> str:
    mode = arg.strip().upper()
    if mode not in ("S", "E"):
        raise BadArgument(f"'MODE {arg.strip()}' unrecognized transfer mode.")
    return mode


def parse_alloc(arg: str) -> int:
    """``ALLO <size>`` (``ALLO n R m`` of RFC 959 is accepted, the record size ignored)."""
    parts = arg.split()
    if len(parts) not in (1, 3) or (len(parts) == 3 and parts[1].upper() != "R"):
        raise BadArgument("ALLO needs a size in bytes")
    return _number(parts[0], "ALLO size")


def parse_rest(arg: str, mode: str) -> RangeSet:
    """The bytes the receiver already holds.

    MODE S ``REST n`` means ``[0, n)``; MODE E ``REST a-b,c-d`` lists ranges.
    A MODE E client may also send a plain offset, which means the same prefix.
    """
    text = arg.strip()
    try:
        if "-" not in text:
            offset = parse_stream_offset(text)
            return RangeSet.span(0, offset)
        if mode != "E":
            raise BadArgument("a REST range list needs MODE E; in MODE S send REST <offset>")
        return RangeSet.parse(text)
    except RangeSyntaxError as exc:
        raise BadArgument(f"bad REST argument: {exc}") from None


@attrs.frozen
class Parallelism:
    starting: int
    minimum: int
    maximum: int


def parse_opts(arg: str) -> tuple[str, str]:
    """``OPTS <command> <options>`` -> (command upper-cased, options)."""
    name, _, rest = arg.strip().partition(" ")
    if not name.isascii() or not name.isalpha():
        raise BadArgument("OPTS needs a command name")
    return name.upper(), rest.strip()


def parse_retr_opts(options: str) -> Parallelism | None:
    """``Parallelism=4,4,4;`` (other known-harmless options ignored)."""
    result: Parallelism | None = None
    for item in options.split(";"):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise BadArgument(f"OPTS RETR option {item[:40]!r} has no '='")
        if key.strip().lower() == "parallelism":
            nums = [_number(v, "parallelism", maximum=MAX_PARALLELISM) for v in value.split(",")]
            if len(nums) != 3 or min(nums) < 1:
                raise BadArgument("Parallelism needs three numbers starting,minimum,maximum, each >= 1")
            result = Parallelism(*nums)
        elif key.strip().lower() in ("striplayout", "blocksize", "markers"):
            continue  # markers: see parse_retr_markers
        else:
            raise BadArgument(f"OPTS RETR option {key.strip()[:40]!r} is not supported")
    return result


def parse_retr_markers(options: str) -> int | None:
    """``Markers=<seconds>;`` of ``OPTS RETR``: the client asks for ``112``
    performance markers while it downloads (0 turns them off).  ``None`` when
    the options do not mention markers."""
    result: int | None = None
    for item in options.split(";"):
        key, sep, value = item.strip().partition("=")
        if sep and key.strip().lower() == "markers":
            result = _number(value, "OPTS RETR Markers", maximum=86400)
    return result


def parse_trev(arg: str) -> tuple[str, float]:
    """``TREV RESTART 5`` or ``TREV PERF=5`` -> (event, interval seconds)."""
    text = arg.strip().replace("=", " ")
    parts = text.split()
    if len(parts) < 2 or parts[0].upper() not in ("RESTART", "PERF"):
        raise BadArgument("TREV needs RESTART <seconds> or PERF <seconds>")
    try:
        seconds = float(parts[1])
    except ValueError:
        raise BadArgument(f"TREV interval {parts[1][:20]!r} is not a number") from None
    if not 0.1 <= seconds <= 86400:
        raise BadArgument(f"TREV interval {seconds} must be between 0.1 and 86400 seconds")
    return parts[0].upper(), seconds


def parse_site(arg: str) -> tuple[str, str]:
    name, _, rest = arg.strip().partition(" ")
    if not name or not name.isascii() or not name.isalpha():
        raise BadArgument("SITE needs a subcommand; try SITE HELP")
    return name.upper(), rest.strip()


def parse_bufsize(arg: str) -> int:
    return _number(arg, "buffer size", maximum=1 << 31)


@attrs.frozen
class ChecksumRequest:
    algorithm: str
    offset: int
    length: int | None  # None means to the end
    path: str


def parse_cksm(arg: str) -> ChecksumRequest:
    """``CKSM <alg> <offset> <length|-1> <path>`` (the path may contain spaces)."""
    parts = arg.strip().split(" ", 3)
    if len(parts) != 4 or not parts[3]:
        raise BadArgument("CKSM needs <algorithm> <offset> <length|-1> <path>")
    alg = parts[0].upper()
    if alg not in CHECKSUM_ALGORITHMS:
        raise BadArgument(
            f"checksum algorithm {parts[0][:20]!r} is not supported ({', '.join(CHECKSUM_ALGORITHMS)})"
        )
    offset = _number(parts[1], "CKSM offset")
    length = None if parts[2].strip() == "-1" else _number(parts[2], "CKSM length")
    return ChecksumRequest(alg, offset, length, parts[3])


@attrs.frozen
class PartialRetrieve:
    offset: int
    length: int
    path: str


def parse_eret(arg: str) -> PartialRetrieve:
    """``ERET P <offset> <length> <path>``: the only ERET module we offer."""
    parts = arg.strip().split(" ", 3)
    if len(parts) != 4 or parts[0].upper() != "P" or not parts[3]:
        raise BadArgument("ERET needs P <offset> <length> <path>")
    offset = _number(parts[1], "ERET offset")
    length = _number(parts[2], "ERET length")
    if offset + length > MAX_OFFSET:
        raise BadArgument("ERET range passes the largest offset")
    return PartialRetrieve(offset, length, parts[3])


@attrs.frozen
class AdjustedStore:
    offset: int
    path: str


def parse_esto(arg: str) -> AdjustedStore:
    """``ESTO A <offset> <path>``: data offsets are shifted by ``offset``."""
    parts = arg.strip().split(" ", 2)
    if len(parts) != 3 or parts[0].upper() != "A" or not parts[2]:
        raise BadArgument("ESTO needs A <offset> <path>")
    return AdjustedStore(_number(parts[1], "ESTO offset"), parts[2])


def parse_dcau(arg: str) -> str:
    mode = arg.strip().upper()
    if mode != "N":
        raise BadArgument(f"DCAU {mode[:10]} is not supported; only DCAU N (no data channel authentication)")
    return mode


@attrs.frozen
class ChmodRequest:
    mode: int
    path: str


def parse_chmod(arg: str) -> ChmodRequest:
    """``SITE CHMOD <octal mode> <path>`` (the path may contain spaces)."""
    parts = arg.strip().split(" ", 1)
    if len(parts) != 2 or not parts[1].strip():
        raise BadArgument("SITE CHMOD needs <octal mode> <path>")
    text = parts[0]
    # Stricter than Globus, which reads "999" as mode 0: a typo must not lock a file.
    if not text or len(text) > 5 or any(c not in "01234567" for c in text) or int(text, 8) > 0o7777:
        raise BadArgument(f"SITE CHMOD mode {text[:20]!r} is not an octal mode such as 644 or 0755")
    return ChmodRequest(int(text, 8), parts[1].strip())


@attrs.frozen
class UtimeRequest:
    #: Modification time in nanoseconds since the epoch.
    mtime_ns: int
    path: str


def parse_ftp_time(text: str) -> int:
    """``YYYYMMDDhhmmss`` (UTC; fractional seconds ``.sss`` allowed) to nanoseconds since the epoch."""
    import calendar
    import time

    whole, _, frac = text.partition(".")
    if len(whole) != 14 or not whole.isascii() or not whole.isdigit() or (frac and not frac.isdigit()):
        raise BadArgument(f"time {text[:30]!r} is not YYYYMMDDhhmmss (UTC)")
    try:
        parsed = time.strptime(whole, "%Y%m%d%H%M%S")
    except ValueError:
        raise BadArgument(f"time {text[:30]!r} is not a valid date and time") from None
    seconds = calendar.timegm(parsed)
    if seconds < 0:
        raise BadArgument(f"time {text[:30]!r} is before 1970")
    return seconds * 1_000_000_000 + int((frac + "000000000")[:9] or 0)


def parse_utime(arg: str) -> UtimeRequest:
    """``SITE UTIME <YYYYMMDDhhmmss> <path>`` (Globus), or ``SITE UTIME <atime> <mtime> <ctime> <path> UTC``.

    The second, five-argument form is ProFTPD's (sent by FileZilla and lftp); only
    its modification time is applied.  Globus reads its third word as a path and
    answers 550: here it does what it says.
    """
    words = arg.strip().split(" ")
    if (
        len(words) >= 5
        and words[-1].upper() == "UTC"
        and all(len(w) == 14 and w.isdigit() for w in words[:3])
    ):
        return UtimeRequest(parse_ftp_time(words[1]), " ".join(words[3:-1]))
    parts = arg.strip().split(" ", 1)
    if len(parts) != 2 or not parts[1].strip():
        raise BadArgument("SITE UTIME needs <YYYYMMDDhhmmss> <path> (or <atime> <mtime> <ctime> <path> UTC)")
    return UtimeRequest(parse_ftp_time(parts[0]), parts[1].strip())
