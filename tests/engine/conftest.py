import os
import random

import pytest

from transfercore.journal import Journal

try:
    from transfercore_mock import reset_stores
except ImportError:  # pragma: no cover - the mock driver is a test dependency
    reset_stores = None


@pytest.fixture(autouse=True)
def _fresh_mock_stores():
    if reset_stores is not None:
        reset_stores()
    yield
    if reset_stores is not None:
        reset_stores()


@pytest.fixture
def journal(tmp_path):
    with Journal(tmp_path / "journal.sqlite") as j:
        yield j


@pytest.fixture
def src_file(tmp_path):
    def make(size: int, seed: int = 1) -> str:
        path = tmp_path / f"src-{size}-{seed}.bin"
        path.write_bytes(random.Random(seed).randbytes(size))
        return os.fspath(path)

    return make
