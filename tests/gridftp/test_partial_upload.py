"""Partial uploads (``ESTO A <offset>``) and abort-and-retry, end to end, beside the real Globus server.

``globus-url-copy -off N -len M`` sends ``ALLO M`` and ``ESTO A N``: the
object is updated in place (a new one gets the slice at the offset, zeros
before it).  Every case runs against the real ``globus-gridftp-server`` and
``transfercore serve --root`` from the same starting state, and the bytes
each produces must be equal.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from transfercore.gridftp.modee import encode_block, encode_eof_eod
from transfercore.testing import abortretry

from .conftest import Client, needs_globus

pytestmark = [pytest.mark.globus, needs_globus]

#: Starting states of the destination: none, longer than the slice's end, shorter than its offset.
STATES = {"new": None, "longer": b"E" * 5000, "shorter": b"S" * 500}


def guc(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["globus-url-copy", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture
def area() -> Iterator[Path]:
    """A directory both servers may write (the real one writes as ``nobody``)."""
    d = Path(tempfile.mkdtemp(prefix="tc-esto-"))
    d.chmod(0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def source(area: Path) -> Path:
    p = area / "src.bin"
    p.write_bytes(os.urandom(10_000))
    p.chmod(0o644)
    return p


@pytest.fixture
def ours(serve, root):
    return serve("--root", str(root), "--anonymous-write", "--marker-interval", "0.3")


def place(path: Path, state: bytes | None) -> None:
    if state is not None:
        path.write_bytes(state)
        path.chmod(0o666)


@pytest.mark.parametrize("third_party", [False, True], ids=["client", "third-party"])
@pytest.mark.parametrize("parallel", ["1", "4"])
def test_partial_put_matches_the_real_server(third_party, parallel, real_server, ours, root, area, source):
    real_dir = area / "real"
    real_dir.mkdir()
    real_dir.chmod(0o777)
    src = f"ftp://127.0.0.1:{real_server}{source}" if third_party else f"file://{source}"
    for name, state in STATES.items():
        place(real_dir / name, state)
        place(root / name, state)
        opts = ["-p", parallel, "-off", "1000", "-len", "3000"]
        guc(*opts, src, f"ftp://127.0.0.1:{real_server}{real_dir}/{name}")
        guc(*opts, src, ours.url(f"/{name}"))
        expected = (real_dir / name).read_bytes()
        assert (root / name).read_bytes() == expected, name
        # what the real server produced, spelled out, so both cannot be wrong alike
        old = state or b""
        want = bytearray(old.ljust(4000, b"\0") if len(old) < 4000 else old)
        want[1000:4000] = source.read_bytes()[1000:4000]
        assert expected == bytes(want), name
    # nothing partial is left beside the objects
    assert sorted(p.name for p in root.iterdir()) == sorted(STATES)


def test_restart_markers_name_data_offsets_as_the_real_server(real_server, ours, root, area, source):
    real_dir = area / "real"
    real_dir.mkdir()
    real_dir.chmod(0o777)
    outs = []
    for url in (f"ftp://127.0.0.1:{real_server}{real_dir}/m.bin", ours.url("/m.bin")):
        proc = guc("-dbg", "-p", "2", "-off", "1000", "-len", "3000", f"file://{source}", url)
        outs.append(re.findall(r"^111 Range Marker (\S+)", proc.stdout + proc.stderr, re.MULTILINE))
    real, mine = outs
    assert real == ["0-3000"]
    assert mine == real


def _esto_raw(port: int, path: str, payload: bytes, *, mode: str, offset: int, blocks: list[int] | None = None) -> str:
    """ESTO without ALLO over a raw control connection; MODE E sends ``blocks`` (data offsets) in that order."""
    c = Client(port)
    try:
        c.login()
        assert c.cmd("TYPE I")[0] == 200
        assert c.cmd(f"MODE {mode}")[0] == 200
        host, dport = c.pasv()
        c.raw(f"ESTO A {offset} {path}\r\n".encode())
        with socket.create_connection((host, dport), timeout=20) as data:
            code, text = c.reply()
            assert code == 150, text
            if mode == "S":
                data.sendall(payload)
            else:
                step = len(payload) // len(blocks or [0])
                for start in blocks or [0]:
                    end = start + step if start + step < len(payload) else len(payload)
                    data.sendall(encode_block(start, payload[start:end]))
                data.sendall(encode_eof_eod(1))
        return c.until_final()[-1][1]
    finally:
        c.close()


@pytest.mark.parametrize("mode", ["S", "E"])
def test_esto_without_allo_matches_the_real_server(mode, real_server, ours, root, area):
    real_dir = area / "real"
    real_dir.mkdir()
    real_dir.chmod(0o777)
    payload = os.urandom(3000)
    for name, state in STATES.items():
        place(real_dir / name, state)
        place(root / name, state)
        blocks = [2000, 0, 1000]  # out of order
        reply = _esto_raw(real_server, f"{real_dir}/{name}", payload, mode=mode, offset=700, blocks=blocks)
        assert reply.startswith("226"), reply
        reply = _esto_raw(ours.port, f"/{name}", payload, mode=mode, offset=700, blocks=blocks)
        assert reply.startswith("226"), reply
        assert (root / name).read_bytes() == (real_dir / name).read_bytes(), name


def test_holes_are_named(ours, root):
    """A spooled MODE E upload with a gap: 451 names the gap, and nothing is stored."""
    c = Client(ours.port)
    try:
        c.login()
        c.cmd("TYPE I")
        c.cmd("MODE E")
        host, dport = c.pasv()
        c.raw(b"ESTO A 100 /h.bin\r\n")
        with socket.create_connection((host, dport), timeout=20) as data:
            assert c.reply()[0] == 150
            data.sendall(encode_block(0, b"a" * 10) + encode_block(25, b"b" * 5) + encode_eof_eod(1))
        code, text = c.until_final()[-1]
    finally:
        c.close()
    assert code == 451 and "no data arrived for 10-25" in text, text
    assert not (root / "h.bin").exists()


def test_a_cut_update_leaves_the_object_as_it_was(ours, root):
    """The client vanishes half way through an in-place update: the old bytes stay, whole."""
    old = os.urandom(100_000)
    (root / "keep.bin").write_bytes(old)
    c = Client(ours.port)
    try:
        c.login()
        c.cmd("TYPE I")
        host, dport = c.pasv()
        assert c.cmd("ALLO 50000")[0] == 200
        c.raw(b"ESTO A 1000 /keep.bin\r\n")
        with socket.create_connection((host, dport), timeout=20) as data:
            assert c.reply()[0] == 150
            data.sendall(b"x" * 20_000)
            data.close()
            code, text = c.until_final()[-1]
    finally:
        c.close()
    assert code == 451, text
    assert (root / "keep.bin").read_bytes() == old


@pytest.mark.parametrize("cycles", [30])
def test_abort_and_retry_at_once(cycles, ours):
    """The retry of an aborted upload never meets the aborted one's spool or partial file."""
    failures = abortretry.run(ours.port, "/race.bin", os.urandom(256 * 1024), cycles)
    assert not failures, "\n".join(failures)


def _esto_alloc(port: int, path: str, data: bytes, *, rest: int | None = None) -> str:
    c = Client(port)
    try:
        c.login()
        c.cmd("TYPE I")
        host, dport = c.pasv()
        if rest is not None:
            assert c.cmd(f"REST {rest}")[0] == 350
        assert c.cmd("ALLO 3000")[0] == 200
        c.raw(f"ESTO A 1000 {path}\r\n".encode())
        with socket.create_connection((host, dport), timeout=20) as conn:
            assert c.reply()[0] == 150
            conn.sendall(data)
        return c.until_final()[-1][1]
    finally:
        c.close()


def test_rest_resumes_a_cut_update_in_data_offsets(ours, root):
    """A cut ESTO keeps its durable part; REST (in data offsets) sends only the rest, the object is whole."""
    old = b"E" * 5000
    (root / "rx.bin").write_bytes(old)
    data = os.urandom(3000)
    reply = _esto_alloc(ours.port, "/rx.bin", data[:1000])
    assert reply.startswith("451") and "first missing range 1000-3000" in reply, reply
    assert (root / "rx.bin").read_bytes() == old  # untouched until the update is whole
    reply = _esto_alloc(ours.port, "/rx.bin", data[1000:], rest=1000)
    assert reply.startswith("226"), reply
    assert (root / "rx.bin").read_bytes() == old[:1000] + data + old[4000:]
