"""End to end: ``transfercore serve`` with the hpss driver, used by a plain FTP client and by the
real ``globus-url-copy`` uploading in parallel MODE E."""

from __future__ import annotations

import ftplib
import io
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from transfercore.gridftp.markers import parse_range_marker
from transfercore.ranges import RangeSet

MiB = 1024 * 1024
#: Peak RSS the server may reach while 1 GiB arrives over 8 connections into
#: HPSS: the interpreter (about 30 MiB), the reorder window (32 MiB), the
#: writer's staging (8 MiB) and PIO buffer (4 MiB), one piece per connection;
#: about 120 MiB was measured.  The file itself is never held.
RSS_BOUND_MIB = 200


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc = proc
        self.port = port

    def peak_rss_mib(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM in /proc status")

    def url(self, path: str) -> str:
        return f"ftp://127.0.0.1:{self.port}{path}"


@pytest.fixture
def start_server(tmp_path: Path, emu_root: Path) -> Iterator[Callable[..., Server]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(driver: str = "hpss:///?block=64KiB&segment=64KiB", *extra: str) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HPSS_EMU_")} | {
            "HPSS_EMU_ROOT": str(emu_root)
        }
        port_file = tmp_path / f"port{len(procs)}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "transfercore", "serve", "--driver", driver, "--anonymous-write",
             "--port", "0", "--port-file", str(port_file), *extra],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "serve.log", "ab"),
        )
        procs.append(proc)
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not start: {(tmp_path / 'serve.log').read_text()!r}")
            time.sleep(0.05)
        return Server(proc, int(port_file.read_text()))

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def server(start_server: Callable[..., Server]) -> int:
    return start_server().port


def test_namespace_and_files_over_ftp(server: int, emu_root: Path) -> None:
    data = os.urandom(300_000)
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", server, timeout=20)
    try:
        ftp.login()
        ftp.mkd("/d")
        ftp.storbinary("STOR /d/x.bin", io.BytesIO(data))
        assert (emu_root / "d" / "x.bin").read_bytes() == data
        assert ftp.sendcmd("SIZE /d/x.bin") == "213 300000"
        facts = dict(ftp.mlsd("/d"))
        assert list(facts) == ["x.bin"]  # no attribute store, no "." or ".."
        assert (facts["x.bin"]["type"], facts["x.bin"]["size"]) == ("file", "300000")
        listing: list[str] = []
        ftp.retrlines("LIST /d", listing.append)
        assert len(listing) == 1 and listing[0].endswith(" x.bin")
        ftp.rename("/d/x.bin", "/d/y.bin")
        back = io.BytesIO()
        ftp.retrbinary("RETR /d/y.bin", back.write)
        assert back.getvalue() == data
        ftp.delete("/d/y.bin")
        ftp.rmd("/d")
        assert not (emu_root / "d").exists()
    finally:
        ftp.close()


def _require_globus() -> None:
    if not shutil.which("globus-url-copy"):
        pytest.fail("this test runs the real globus-url-copy: apt-get install globus-gass-copy-progs")


def _marker_prefixes(output: str) -> list[int]:
    """The end of the durable prefix after each 111; fails unless every marker extends a prefix."""
    held = RangeSet()
    ends = []
    for line in output.splitlines():
        if line.startswith("111 "):
            held = held | parse_range_marker(line)
            assert len(held) == 1 and held.ranges[0].start == 0, f"111 left a hole: {held}"
            ends.append(held.end())
    return ends


def test_globus_url_copy_parallel_mode_e_into_hpss(
    start_server: Callable[..., Server], emu_root: Path, tmp_path: Path
) -> None:
    """1 GiB over 4 and over 8 connections into HPSS PIO, which needs ordered data."""
    _require_globus()
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        for _ in range(1024 // 64):
            f.write(os.urandom(64 * MiB))
    srv = start_server("hpss:///?segment=32MiB", "--marker-interval", "0.3")
    runs = {"p4fast.bin": ["-p", "4", "-fast"], "p8fast.bin": ["-p", "8", "-fast"]}
    for name, flags in runs.items():
        proc = subprocess.run(
            ["globus-url-copy", "-dbg", "-vb", *flags, f"file://{src}", srv.url(f"/{name}")],
            capture_output=True, text=True, timeout=240,
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-3000:]
        ends = _marker_prefixes(out)
        assert ends and ends[-1] == 1024 * MiB, ends
        assert "MODE E" in out
        assert subprocess.run(["cmp", str(src), str(emu_root / name)]).returncode == 0
    assert sorted(p.name for p in emu_root.iterdir() if not p.name.startswith(".hpss")) == sorted(runs)
    # And back down in parallel: reads from HPSS take turns in order, the sends run in parallel.
    back = tmp_path / "back.bin"
    proc = subprocess.run(
        ["globus-url-copy", "-p", "4", "-fast", srv.url("/p8fast.bin"), f"file://{back}"],
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert subprocess.run(["cmp", str(src), str(back)]).returncode == 0
    peak = srv.peak_rss_mib()
    assert peak < RSS_BOUND_MIB, f"server peak RSS {peak:.0f} MiB"


def _final(ftp: ftplib.FTP) -> tuple[str, RangeSet]:
    """The first reply that is not a marker, and the ranges the 111 markers before it named."""
    held = RangeSet()
    while True:
        line = ftp.getline()
        while line[3:4] == "-":  # a multi-line reply (112)
            end = line[:3] + " "
            line = ftp.getline()
            while not line.startswith(end):
                line = ftp.getline()
        if line.startswith("111 "):
            held = held | parse_range_marker(line)
        elif not line.startswith(("112", "150")):
            return line, held


def test_globus_url_copy_p4_without_fast_into_hpss(start_server: Callable[..., Server], emu_root: Path, tmp_path: Path) -> None:
    _require_globus()
    src = tmp_path / "mid.bin"
    src.write_bytes(os.urandom(48 * MiB + 4321))
    srv = start_server("hpss:///?segment=8MiB", "--marker-interval", "0.2")
    proc = subprocess.run(
        ["globus-url-copy", "-dbg", "-vb", "-p", "4", f"file://{src}", srv.url("/mid.bin")],
        capture_output=True, text=True, timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "MODE E" in out and _marker_prefixes(out)[-1] == src.stat().st_size
    assert (emu_root / "mid.bin").read_bytes() == src.read_bytes()


def test_aborted_upload_leaves_nothing_under_the_final_name_and_resumes(server: int, emu_root: Path) -> None:
    """A MODE E upload into HPSS whose data connection stops mid-block fails; nothing appears under
    its name; the durable prefix the 111 markers named is kept aside and a REST upload finishes it."""
    payload = os.urandom(1_000_000)
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", server, timeout=20)
    try:
        ftp.login()
        ftp.sendcmd("TYPE I")
        ftp.sendcmd("MODE E")
        host, port = ftplib.parse227(ftp.sendcmd("PASV"))
        ftp.sendcmd(f"ALLO {len(payload)}")
        ftp.putcmd("STOR /cut.bin")
        data = socket.create_connection((host, port), timeout=20)
        data.sendall(struct.pack("!BQQ", 0, 300_000, 0) + payload[:200_000])
        data.close()
        final, held = _final(ftp)
        assert final.startswith("451") and "middle of a block" in final, final
        assert not (emu_root / "cut.bin").exists()
        with pytest.raises(ftplib.error_perm, match="550"):
            ftp.sendcmd("SIZE /cut.bin")
        assert held == RangeSet.span(0, held.end()) and held.end() >= 64 * 1024
        # Resume: only the bytes the markers did not name are sent again.
        host, port = ftplib.parse227(ftp.sendcmd("PASV"))
        ftp.sendcmd(f"ALLO {len(payload)}")
        assert ftp.sendcmd(f"REST {held}").startswith("350")
        ftp.putcmd("STOR /cut.bin")
        data = socket.create_connection((host, port), timeout=20)
        start = held.end()
        data.sendall(struct.pack("!BQQ", 0, len(payload) - start, start) + payload[start:])
        data.sendall(struct.pack("!BQQ", 0x4C, 0, 1))
        data.close()
        final, _ = _final(ftp)
        assert final.startswith("226"), final
        assert (emu_root / "cut.bin").read_bytes() == payload
        assert [p.name for p in emu_root.iterdir() if not p.name.startswith(".hpss")] == ["cut.bin"]
    finally:
        ftp.close()


def test_upload_failing_before_anything_is_durable_leaves_no_file(server: int, emu_root: Path) -> None:
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", server, timeout=20)
    try:
        ftp.login()
        ftp.sendcmd("TYPE I")
        ftp.sendcmd("MODE E")
        host, port = ftplib.parse227(ftp.sendcmd("PASV"))
        ftp.sendcmd("ALLO 1000000")
        ftp.putcmd("STOR /empty.bin")
        data = socket.create_connection((host, port), timeout=20)
        data.sendall(struct.pack("!BQQ", 0, 300_000, 0) + b"x" * 1000)
        data.close()
        final, held = _final(ftp)
        assert final.startswith("451") and not held
        assert [p.name for p in emu_root.iterdir() if not p.name.startswith(".hpss")] == []
        assert ftp.sendcmd("NOOP").startswith("200")  # the session goes on
    finally:
        ftp.close()
