"""MODE E with four streams into hpss:// (the HPSS emulator) through the real server."""

from __future__ import annotations

import os
import re

import pytest
from transfercore_globus_dsi.testing import guc

from transfercore.ranges import RangeSet

pytestmark = pytest.mark.globus


def test_mode_e_p4_into_hpss_identical(dsi_server, tmp_path, monkeypatch):
    emu = tmp_path / "hpss"
    (emu / "proj").mkdir(parents=True)
    for name in list(os.environ):
        if name.startswith("HPSS_EMU_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HPSS_EMU_ROOT", str(emu))  # inherited by the server and its sessions
    server = dsi_server("hpss:///proj?block=256KiB&segment=1MiB", dsi_options=["durable_interval=0.05"])
    src = tmp_path / "src.bin"
    payload = os.urandom(5 * 1024 * 1024 + 4321)
    src.write_bytes(payload)
    proc = guc("-dbg", "-vb", "-fast", "-p", "4", "-cd", f"file://{src}", server.ftp("/in/h.bin"))
    out = proc.stdout + proc.stderr
    assert (emu / "proj" / "in" / "h.bin").read_bytes() == payload
    # written under the driver's hidden partial name and renamed: nothing else is left
    assert [p.name for p in (emu / "proj" / "in").iterdir()] == ["h.bin"]
    # HPSS restarts from a prefix: every marker the server sent is one, inside the file
    marks = [RangeSet.parse(m) for m in re.findall(r"^111 Range Marker (\S+)", out, re.MULTILINE)]
    assert marks
    total = RangeSet()
    for m in marks:
        total = total | m
    assert total == RangeSet.span(0, len(payload))
    # the server delivered the data in order, as the driver declared it needs
    assert ", ordered" in server.dsi_log()
    back = tmp_path / "back.bin"
    guc("-fast", "-p", "4", server.ftp("/in/h.bin"), f"file://{back}")
    assert back.read_bytes() == payload
