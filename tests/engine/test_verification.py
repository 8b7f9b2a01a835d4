"""The verification of a published object says which check it did."""

from __future__ import annotations

import io
import threading
from typing import Any

import pytest

from transfercore.capabilities import Capabilities, RestartModel
from transfercore.checksums import Hasher, digest_bytes
from transfercore.engine.verification import Verification
from transfercore.errors import ChecksumMismatch

DATA = b"transfercore " * 1000


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._f = io.BytesIO(data)
        self.size = len(data)

    def read(self, offset: int, length: int) -> bytes:
        self._f.seek(offset)
        return self._f.read(length)

    def close(self) -> None:
        pass

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _Driver:
    """A store that declares no checksum algorithm; ``stored`` is a checksum it may still give."""

    def __init__(self, stored: str | None, data: bytes = DATA) -> None:
        self.stored = stored
        self.data = data
        self.reads = 0
        self.removed: list[str] = []

    def checksum(self, path: str, algorithm: str) -> str | None:
        return self.stored

    def capabilities(self) -> Capabilities:
        return Capabilities(restart=RestartModel.RANGES, atomic_publish=True, checksums=frozenset())

    def open_read(self, path: str) -> _Reader:
        self.reads += 1
        return _Reader(self.data)

    def remove(self, path: str) -> None:
        self.removed.append(path)


class _Endpoint:
    def __init__(self, driver: _Driver) -> None:
        self.driver = driver
        self.path = "/o"


def _verify(driver: _Driver) -> tuple[str | None, list[Any]]:
    events: list[Any] = []
    hasher = Hasher("md5")
    hasher.update(DATA)
    verification = Verification(
        _Endpoint(driver), writer=None, size=len(DATA), hasher=hasher,  # type: ignore[arg-type]
        block_size=4096, streams=1, progress_interval=60.0, emit=events.append,
        cancel=threading.Event(), wake=threading.Event(),
    )
    return verification.verify_published(ordered=True), events


def test_a_checksum_the_store_gives_is_labelled_storage_even_undeclared() -> None:
    driver = _Driver(stored=digest_bytes("md5", DATA))
    checksum, events = _verify(driver)
    assert checksum == digest_bytes("md5", DATA)
    assert [e.method for e in events if e.kind == "verify"] == ["storage"]
    assert driver.reads == 0


def test_reading_the_object_is_labelled_read_back() -> None:
    driver = _Driver(stored=None)
    checksum, events = _verify(driver)
    assert checksum == digest_bytes("md5", DATA)
    assert [e.method for e in events if e.kind == "verify"] == ["read-back"]
    assert driver.reads == 1


def test_a_wrong_store_checksum_removes_the_object() -> None:
    driver = _Driver(stored=digest_bytes("md5", b"something else"))
    with pytest.raises(ChecksumMismatch):
        _verify(driver)
    assert driver.removed == ["/o"]
