import os

import pytest

from transfercore.journal import Journal
from transfercore.registry import open_location

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


def put_mock(url: str, data: bytes) -> None:
    """Store a complete object in the mock store named by ``url``."""
    endpoint = open_location(url)
    writer = endpoint.driver.open_write(endpoint.path, len(data))
    if data:
        writer.write(0, data)
    writer.complete()


def get_mock(url: str) -> bytes:
    endpoint = open_location(url)
    with endpoint.driver.open_read(endpoint.path) as reader:
        return reader.read(0, reader.size)


def payload(size: int, seed: int = 1) -> bytes:
    import random

    return random.Random(seed).randbytes(size)


def crash(url: str) -> None:
    open_location(url).driver.simulate_crash()


@pytest.fixture
def src_file(tmp_path):
    def make(size: int, seed: int = 1) -> str:
        path = tmp_path / f"src-{size}-{seed}.bin"
        path.write_bytes(payload(size, seed))
        return os.fspath(path)

    return make
