"""Partial uploads (``ESTO A <offset>``) through the DSI, byte for byte beside the server's own file storage.

``globus-url-copy -off N -len M`` updates the object in place: the server
hands the DSI the data at object offsets and does not truncate.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.globus

#: Starting states of the destination: none, longer than the slice's end, shorter than its offset.
STATES = {"new": None, "longer": b"E" * 5000, "shorter": b"S" * 500}


def run_guc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["globus-url-copy", *args], capture_output=True, text=True, timeout=60)


def place(path: Path, state: bytes | None) -> None:
    if state is not None:
        path.write_bytes(state)
        path.chmod(0o666)


@pytest.mark.parametrize("third_party", [False, True], ids=["client", "third-party"])
@pytest.mark.parametrize("parallel", ["1", "4"])
def test_partial_put_matches_the_real_server(third_party, parallel, served, root, real_server, public_dir):
    source = public_dir / "src.bin"
    source.write_bytes(os.urandom(10_000))
    source.chmod(0o644)
    real_dir = public_dir / "real"
    real_dir.mkdir()
    real_dir.chmod(0o777)
    src = f"ftp://127.0.0.1:{real_server}{source}" if third_party else f"file://{source}"
    for name, state in STATES.items():
        place(real_dir / name, state)
        place(root / name, state)
        opts = ["-p", parallel, "-off", "1000", "-len", "3000"]
        for url in (f"ftp://127.0.0.1:{real_server}{real_dir}/{name}", served.ftp(f"/{name}")):
            proc = run_guc(*opts, src, url)
            assert proc.returncode == 0, proc.stdout + proc.stderr
        assert (root / name).read_bytes() == (real_dir / name).read_bytes(), name
    assert sorted(p.name for p in root.iterdir()) == sorted(STATES)


def test_markers_name_the_slice_as_the_real_server(served, root, real_server, public_dir):
    """The DSI reports the slice at object offsets; the server names it in data offsets, as its own storage's."""
    source = public_dir / "big.bin"
    source.write_bytes(os.urandom(8 * 1024 * 1024))
    source.chmod(0o644)
    (root / "m.bin").write_bytes(b"E" * 1000)
    proc = run_guc("-dbg", "-vb", "-fast", "-p", "4", "-off", "1000", "-len", "6000000", f"file://{source}",
                   served.ftp("/m.bin"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    marks = re.findall(r"^111 Range Marker (\S+)", out, re.MULTILINE)
    assert marks and marks[-1].endswith("-6000000"), marks
    assert all(not m.startswith("1000-") for m in marks), marks
    assert (root / "m.bin").read_bytes() == b"E" * 1000 + source.read_bytes()[1000:6001000]


def test_ordered_storage_refuses_an_offset_past_the_end(dsi_server, tmp_path, monkeypatch):
    emu = tmp_path / "hpss"
    (emu / "proj").mkdir(parents=True)
    for name in list(os.environ):
        if name.startswith("HPSS_EMU_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HPSS_EMU_ROOT", str(emu))
    server = dsi_server("hpss:///proj?block=256KiB&segment=1MiB")
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(100_000))
    assert run_guc(f"file://{src}", server.ftp("/o.bin")).returncode == 0
    proc = run_guc("-off", "200000", "-len", "1000", f"file://{src}", server.ftp("/o.bin"))
    assert proc.returncode != 0 and "553" in proc.stdout + proc.stderr
    assert "Cannot store at offset 200000" in proc.stdout + proc.stderr
    assert (emu / "proj" / "o.bin").read_bytes() == src.read_bytes()
    # up to the end is an update, in order
    other = tmp_path / "other.bin"
    other.write_bytes(os.urandom(120_000))
    proc = run_guc("-p", "4", "-off", "50000", "-len", "60000", f"file://{other}", server.ftp("/o.bin"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (emu / "proj" / "o.bin").read_bytes() == src.read_bytes()[:50000] + other.read_bytes()[50000:110000]
    assert sorted(p.name for p in (emu / "proj").iterdir()) == ["o.bin"]
