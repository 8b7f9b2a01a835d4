"""The importable test class, run here exactly as a driver's own suite would (posix driver)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from transfercore.testing.pytest_kit import DriverConformance

pytestmark = pytest.mark.fuse  # the power-loss clause mounts FUSE for posix


class TestPosixConformance(DriverConformance):
    @pytest.fixture
    def conformance_url(self, tmp_path):
        return f"posix://{tmp_path}"


def test_a_failing_clause_fails_the_test(tmp_path):
    (tmp_path / "test_bad.py").write_text(
        "import pytest\n"
        "from transfercore.testing.pytest_kit import DriverConformance\n"
        "class TestBad(DriverConformance):\n"
        "    @pytest.fixture\n"
        "    def conformance_url(self, tmp_path):\n"
        "        return f'posix://{tmp_path}/missing-directory'\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "round-trip or ordered", "test_bad.py"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert result.returncode == 1
    assert "1 failed, 1 skipped" in result.stdout
    assert "clause round-trip violated" in result.stdout and "does not exist" in result.stdout
