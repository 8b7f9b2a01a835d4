from __future__ import annotations

from pathlib import Path

import pytest
from transfercore_posix.driver import PosixDriver


@pytest.fixture
def driver() -> PosixDriver:
    return PosixDriver()


@pytest.fixture
def target(tmp_path: Path) -> str:
    """The path of an object that does not exist yet, in an existing directory."""
    return str(tmp_path / "obj.bin")

