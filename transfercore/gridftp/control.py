"""Control-channel framing: bytes in, command lines out; replies in, bytes out.

No sockets here.  :class:`CommandReader` is fed whatever the socket returned
and yields :class:`Command` records or :class:`BadLine` records; a bad line is
reported and skipped, so one malformed command never ends the session.
Telnet IAC sequences (clients send ``IAC IP IAC DM`` before ``ABOR``) are
removed; ``IAC IAC`` is a literal 0xFF byte, which is then refused as
non-UTF-8 only if it is not part of valid text.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from .errors import LocalProtocolError

#: RFC 959 needs far less, but GridFTP range lists in REST can be long.
DEFAULT_MAX_LINE = 8192

IAC = 0xFF
_WILL, _WONT, _DO, _DONT = 0xFB, 0xFC, 0xFD, 0xFE
_SB, _SE = 0xFA, 0xF0
_MAX_VERB = 8


@attrs.frozen
class Command:
    """One command line: ``verb`` upper-cased, ``arg`` the rest of the line ('' when none)."""

    verb: str
    arg: str = ""

    def __str__(self) -> str:
        # Never echo a password into logs.
        if self.verb == "PASS":
            return "PASS ****"
        return f"{self.verb} {self.arg}".rstrip()


@attrs.frozen
class BadLine:
    """A line that is not a command; ``reason`` is safe to send back in a 500 reply."""

    reason: str


def _text_lines(lines: Iterable[str]) -> tuple[str, ...]:
    return tuple(lines)


@attrs.frozen
class Reply:
    """A reply: ``code`` and one or more text lines.

    More than one line is sent in the multi-line form ``code-first``,
    `` middle``..., ``code last``, as GridFTP's ``229-``/``229 End``.
    """

    code: int
    lines: tuple[str, ...] = attrs.field(converter=_text_lines)

    def __attrs_post_init__(self) -> None:
        if not 100 <= self.code <= 699:
            raise LocalProtocolError(f"reply code {self.code} is not a three-digit FTP code")
        if not self.lines:
            raise LocalProtocolError("a reply needs at least one line of text")
        for line in self.lines:
            if "\r" in line or "\n" in line:
                raise LocalProtocolError(f"reply text {line!r} contains a line break")

    @classmethod
    def one(cls, code: int, text: str) -> Reply:
        return cls(code, (text,))

    @property
    def is_error(self) -> bool:
        return self.code >= 400

    @property
    def is_final(self) -> bool:
        """Whether the reply ends the command (1xx are preliminary)."""
        return self.code >= 200

    @property
    def is_marker(self) -> bool:
        """A restart (111) or performance (112) marker sent during a transfer."""
        return self.code in (111, 112)

    @property
    def is_restart_marker(self) -> bool:
        return self.code == 111

    @property
    def completes_transfer(self) -> bool:
        """The data transfer ended with everything stored or sent (226)."""
        return self.code == 226

    @property
    def summary(self) -> str:
        """The code and the last line, short enough for a log line."""
        return f"{self.code} {self.lines[-1]}"[:200]

    def encode(self) -> bytes:
        if len(self.lines) == 1:
            return f"{self.code} {self.lines[0]}\r\n".encode()
        first, *middle, last = self.lines
        parts = [f"{self.code}-{first}\r\n"]
        # A middle line must not start with the code and a space, or the client would stop there.
        parts.extend(f" {line}\r\n" for line in middle)
        parts.append(f"{self.code} {last}\r\n")
        return "".join(parts).encode()


class CommandReader:
    """Split a control stream into commands.

    Lines end with CRLF (a bare LF is accepted, as most servers do).  A line
    longer than ``max_line`` is dropped up to its end and reported once.
    """

    def __init__(self, *, max_line: int = DEFAULT_MAX_LINE) -> None:
        self._max_line = max_line
        self._buf = bytearray()
        self._iac_state = 0  # 0 normal, 1 after IAC, 2 after IAC WILL/WONT/DO/DONT, 3 in SB
        self._discarding = False
        self._events: list[Command | BadLine] = []

    def receive(self, data: bytes) -> list[Command | BadLine]:
        if self._iac_state == 0 and IAC not in data:
            # Fast path: plain text, split on line feeds.
            start = 0
            while True:
                end = data.find(b"\n", start)
                if end < 0:
                    self._extend(data[start:])
                    break
                self._extend(data[start:end])
                self._end_line()
                start = end + 1
        else:
            for byte in data:
                self._feed(byte)
        events, self._events = self._events, []
        return events

    def _feed(self, byte: int) -> None:
        state = self._iac_state
        if state == 1:
            self._iac_state = 0
            if byte == IAC:
                self._append(IAC)
            elif byte in (_WILL, _WONT, _DO, _DONT):
                self._iac_state = 2
            elif byte == _SB:
                self._iac_state = 3
            return
        if state == 2:
            self._iac_state = 0
            return
        if state == 3:
            if byte == _SE:
                self._iac_state = 0
            return
        if byte == IAC:
            self._iac_state = 1
            return
        if byte == 0x0A:
            self._end_line()
            return
        self._append(byte)

    def _append(self, byte: int) -> None:
        if self._discarding:
            return
        if len(self._buf) >= self._max_line:
            self._buf.clear()
            self._discarding = True
            self._events.append(BadLine(f"command line longer than {self._max_line} bytes"))
            return
        self._buf.append(byte)

    def _extend(self, chunk: bytes) -> None:
        if self._discarding or not chunk:
            return
        if len(self._buf) + len(chunk) > self._max_line:
            self._buf.clear()
            self._discarding = True
            self._events.append(BadLine(f"command line longer than {self._max_line} bytes"))
            return
        self._buf += chunk

    def _end_line(self) -> None:
        raw = bytes(self._buf)
        self._buf.clear()
        if self._discarding:
            self._discarding = False
            return
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        self._events.append(parse_line(raw))


def parse_line(raw: bytes) -> Command | BadLine:
    """Parse one line without its line end."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return BadLine("command line is not valid UTF-8")
    if any(ch in text for ch in "\r\x00"):
        return BadLine("command line contains a CR or NUL character")
    if not text.strip():
        return BadLine("empty command line")
    verb, _, arg = text.lstrip(" ").partition(" ")
    if not verb.isascii() or not verb.isalpha() or len(verb) > _MAX_VERB:
        return BadLine("command verb must be a few ASCII letters")
    return Command(verb.upper(), arg)
