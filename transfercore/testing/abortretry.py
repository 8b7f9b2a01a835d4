"""Abort an upload and retry it at once: the race between a retry and the aborted upload's clean-up.

One cycle uploads ``payload`` to ``path`` over a raw control connection,
cuts the upload half way (the client vanishes: data and control
connections closed, or an ``ABOR``), and at once uploads it again in a new
session; the retry must end ``226`` and a download must give back exactly
``payload``.  Shared by the test suite (a few dozen cycles) and the
benchmark that runs the 200 cycles.
"""

from __future__ import annotations

import socket

import attrs

from ..gridftp.modee import encode_block, encode_eof_eod

TIMEOUT = 30.0


class CycleFailed(AssertionError):
    """A retry did not store the upload, or stored something else."""


@attrs.frozen
class Variant:
    mode: str = "S"  # S or E
    alloc: bool = True  # ALLO <size> before STOR
    abort: str = "close"  # close: the client vanishes; abor: ABOR

    def __str__(self) -> str:
        return f"MODE {self.mode}, {'ALLO' if self.alloc else 'no ALLO'}, {self.abort}"


class Control:
    """A minimal control connection: commands, replies."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.file = self.sock.makefile("rb")
        self.reply()

    def reply(self) -> tuple[int, str]:
        lines = [self._line()]
        first = lines[0]
        if first[3:4] == "-":
            while not (lines[-1][:3] == first[:3] and lines[-1][3:4] == " "):
                lines.append(self._line())
        return int(first[:3]), "\n".join(lines)

    def _line(self) -> str:
        raw = self.file.readline()
        if not raw:
            raise ConnectionError("control connection closed")
        return raw.decode(errors="replace").rstrip("\r\n")

    def cmd(self, text: str, expect: int | None = None) -> tuple[int, str]:
        self.sock.sendall(text.encode() + b"\r\n")
        code, msg = self.reply()
        if expect is not None and code != expect:
            raise CycleFailed(f"{text!r} answered {msg!r}")
        return code, msg

    def final(self) -> tuple[int, str]:
        while True:
            code, msg = self.reply()
            if code >= 200:
                return code, msg

    def login(self, mode: str) -> None:
        self.cmd("USER anonymous", 331)
        self.cmd("PASS x@y", 230)
        self.cmd("TYPE I", 200)
        self.cmd(f"MODE {mode}", 200)

    def pasv(self) -> int:
        _, msg = self.cmd("PASV", 227)
        nums = [int(n) for n in msg[msg.index("(") + 1 : msg.index(")")].split(",")]
        return nums[4] * 256 + nums[5]

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _framed(mode: str, data: bytes, *, whole: bool) -> bytes:
    if mode == "S":
        return data
    framed = encode_block(0, data)
    return framed + encode_eof_eod(1) if whole else framed


def _start_store(port: int, path: str, size: int, v: Variant) -> tuple[Control, socket.socket]:
    ctl = Control(port)
    ctl.login(v.mode)
    data_port = ctl.pasv()
    if v.alloc:
        ctl.cmd(f"ALLO {size}", 200)
    ctl.sock.sendall(f"STOR {path}\r\n".encode())
    data = socket.create_connection(("127.0.0.1", data_port), timeout=TIMEOUT)
    code, msg = ctl.reply()
    if code != 150:
        data.close()
        ctl.close()
        raise CycleFailed(f"STOR {path} answered {msg!r}")
    return ctl, data


def cycle(port: int, path: str, payload: bytes, v: Variant) -> None:
    """One abort and its immediate retry; :class:`CycleFailed` when the retry fails."""
    ctl, data = _start_store(port, path, len(payload), v)
    data.sendall(_framed(v.mode, payload[: len(payload) // 2], whole=False))
    if v.abort == "abor":
        ctl.sock.sendall(b"ABOR\r\n")
        data.close()
        ctl.final()  # the aborted transfer's reply
        ctl.close()
    else:
        # the client vanishes: the server cleans up while the retry arrives
        data.close()
        ctl.close()
    ctl, data = _start_store(port, path, len(payload), v)
    try:
        data.sendall(_framed(v.mode, payload, whole=True))
        data.close()
        code, msg = ctl.final()
        if code != 226:
            raise CycleFailed(f"the retried upload of {path} ({v}) answered {msg!r}")
        if download(ctl, path) != payload:
            raise CycleFailed(f"the retried upload of {path} ({v}) stored other bytes")
    finally:
        ctl.close()


def download(ctl: Control, path: str) -> bytes:
    ctl.cmd("MODE S", 200)
    data_port = ctl.pasv()
    ctl.sock.sendall(f"RETR {path}\r\n".encode())
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", data_port), timeout=TIMEOUT) as data:
        code, msg = ctl.reply()
        if code != 150:
            raise CycleFailed(f"RETR {path} answered {msg!r}")
        while chunk := data.recv(1 << 20):
            chunks.append(chunk)
    code, msg = ctl.final()
    if code != 226:
        raise CycleFailed(f"RETR {path} answered {msg!r}")
    return b"".join(chunks)


VARIANTS = (
    Variant("S", True, "close"),
    Variant("S", False, "close"),
    Variant("E", True, "close"),
    Variant("E", False, "close"),
    Variant("E", False, "abor"),
)


def run(port: int, path: str, payload: bytes, cycles: int) -> list[str]:
    """``cycles`` cycles over :data:`VARIANTS` in turn; the failures, described."""
    failures = []
    for i in range(cycles):
        v = VARIANTS[i % len(VARIANTS)]
        try:
            cycle(port, path, payload, v)
        except (CycleFailed, OSError) as exc:
            failures.append(f"cycle {i} ({v}): {exc}")
    return failures
