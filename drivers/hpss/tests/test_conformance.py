"""The project's conformance kit against the driver on the emulator.

Segments as small as the kit's blocks: the kit writes objects of about
120 KiB, and HPSS acknowledges bytes only at the end of a segment.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from transfercore.testing.pytest_kit import DriverConformance


class TestHpssConformance(DriverConformance):
    @pytest.fixture
    def conformance_url(self, emu_root: Path) -> str:
        (emu_root / "scratch").mkdir()
        return "hpss:///scratch?block=64KiB&segment=64KiB"
