"""End to end: ``transfercore serve`` with the hpss driver, used by a plain FTP client."""

from __future__ import annotations

import ftplib
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def server(tmp_path: Path, emu_root: Path) -> Iterator[int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPSS_EMU_")} | {
        "HPSS_EMU_ROOT": str(emu_root)
    }
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "transfercore",
            "serve",
            "--driver",
            "hpss:///?block=64KiB&segment=64KiB",
            "--anonymous-write",
            "--port",
            "0",
            "--port-file",
            str(port_file),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not start: {proc.stderr.read() if proc.stderr else ''!r}")
            time.sleep(0.05)
        yield int(port_file.read_text())
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


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
