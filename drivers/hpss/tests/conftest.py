from __future__ import annotations

import os
from pathlib import Path

import pytest
from hpss_support import KiB
from transfercore_hpss.driver import HpssDriver


@pytest.fixture
def emu_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh emulated HPSS namespace, with no fault armed."""
    for name in list(os.environ):
        if name.startswith("HPSS_EMU_"):
            monkeypatch.delenv(name)
    root = tmp_path / "hpss"
    root.mkdir()
    monkeypatch.setenv("HPSS_EMU_ROOT", str(root))
    return root


@pytest.fixture
def driver(emu_root: Path) -> HpssDriver:
    """Small blocks and segments so that a 1 MiB file has several markers."""
    return HpssDriver(options={"block": 64 * KiB, "segment": 256 * KiB, "watchdog": 5.0})
