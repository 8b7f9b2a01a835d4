import pytest

from transfercore.testing.pytest_kit import DriverConformance


class TestAppendConformance(DriverConformance):
    @pytest.fixture
    def conformance_url(self, tmp_path):
        return f"append://{tmp_path}"
