from __future__ import annotations

import pytest
from transfercore_mock.stores import reset_stores


@pytest.fixture(autouse=True)
def _fresh_stores():
    """Every test starts with no in-process store."""
    reset_stores()
    yield
    reset_stores()
