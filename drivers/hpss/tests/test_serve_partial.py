"""``transfercore serve --driver hpss://``: partial uploads (``ESTO A <offset>``) and abort-and-retry.

HPSS writes in order only: an update may start anywhere up to the object's
end (the kept bytes are copied around it, in order, into the partial file,
published at once); an offset past the end is refused with 553 before any
byte lands, the object untouched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import test_serve
from test_serve import Server

from transfercore.testing import abortretry

#: The servers of test_serve, under a name of its own here.
hpss_serve = test_serve.start_server


#: (offset, length) of the updates: inside, reaching past the end (it grows), starting at the end.
UPDATES = ((70_000, 50_000), (180_000, 25_000), (205_000, 7_000))


def _guc(*args: str) -> subprocess.CompletedProcess[str]:
    if not shutil.which("globus-url-copy"):
        pytest.fail("this test runs the real globus-url-copy: apt-get install globus-gass-copy-progs")
    return subprocess.run(["globus-url-copy", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("parallel", ["1", "4"])
def test_partial_put_updates_in_place(
    parallel: str, hpss_serve: Callable[..., Server], emu_root: Path, tmp_path: Path
) -> None:
    srv = hpss_serve()
    old = os.urandom(200_000)
    new = os.urandom(300_000)
    (tmp_path / "old").write_bytes(old)
    (tmp_path / "new").write_bytes(new)
    assert _guc(f"file://{tmp_path}/old", srv.url("/o.bin")).returncode == 0
    # inside, then reaching past the end (the object grows), then starting at the end
    for off, length in UPDATES:
        proc = _guc("-p", parallel, "-off", str(off), "-len", str(length), f"file://{tmp_path}/new", srv.url("/o.bin"))
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (emu_root / "o.bin").read_bytes() == expected_after(old, new)
    assert sorted(p.name for p in emu_root.iterdir() if not p.name.startswith(".hpss_emu")) == ["o.bin"]


def expected_after(old: bytes, new: bytes) -> bytes:
    """The object after the three updates of the test above."""
    obj = bytearray(old)
    for off, length in UPDATES:
        end = off + length
        if end > len(obj):
            obj.extend(bytes(end - len(obj)))
        obj[off:end] = new[off:end]
    return bytes(obj)


@pytest.mark.parametrize("exists", [True, False], ids=["existing", "new"])
def test_offset_past_the_end_is_refused_before_any_byte(
    exists: bool, hpss_serve: Callable[..., Server], emu_root: Path, tmp_path: Path
) -> None:
    srv = hpss_serve()
    src = tmp_path / "src"
    src.write_bytes(os.urandom(50_000))
    if exists:
        assert _guc(f"file://{src}", srv.url("/p.bin")).returncode == 0
    before = (emu_root / "p.bin").read_bytes() if exists else None
    proc = _guc("-off", "60000", "-len", "1000", f"file://{src}", srv.url("/p.bin"))
    assert proc.returncode != 0
    assert "553 Cannot store at offset 60000" in proc.stdout + proc.stderr
    if exists:
        assert (emu_root / "p.bin").read_bytes() == before
    else:
        assert not (emu_root / "p.bin").exists()
    assert not [p for p in emu_root.iterdir() if p.name.endswith(".tcpart")]


def test_abort_and_retry_at_once(hpss_serve: Callable[..., Server]) -> None:
    """A retry never meets the aborted upload's partial file (it waits for its clean-up)."""
    srv = hpss_serve()
    failures = abortretry.run(srv.port, "/race.bin", os.urandom(256 * 1024), 30)
    assert not failures, "\n".join(failures)
