"""An upload without ALLO is refused before any data when it could not be stored."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from transfercore.errors import IsADirectory, NotADirectory, NotFound
from transfercore.gridftp.spooled import check_writable
from transfercore.registry import open_location


@pytest.fixture
def driver(tmp_path: Path):
    (tmp_path / "d").mkdir()
    (tmp_path / "file").write_bytes(b"x")
    return open_location(f"posix:///?root={tmp_path}").driver


def _check(driver, path: str) -> None:
    check_writable(driver, path, driver.local_path(path))


def test_a_storable_name_passes_and_nothing_is_created(driver, tmp_path: Path) -> None:
    _check(driver, "/d/new.bin")
    assert os.listdir(tmp_path / "d") == []  # no probe file made and removed


@pytest.mark.parametrize(
    ("path", "error"),
    [("/missing/f", NotFound), ("/file/f", NotADirectory), ("/d", IsADirectory), ("/", IsADirectory)],
)
def test_an_unstorable_name_is_refused(driver, path: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        _check(driver, path)


def test_without_a_local_path_a_probe_writer_decides() -> None:
    calls: list[object] = []

    class Probe:
        def abort(self) -> None:
            calls.append("abort")

    class Remote:
        def open_write(self, path: str, size: int, resume: object) -> Probe:
            calls.append((path, size, resume))
            return Probe()

    check_writable(Remote(), "/fine.bin", None)  # type: ignore[arg-type]
    assert calls == [("/fine.bin", 0, None), "abort"]
