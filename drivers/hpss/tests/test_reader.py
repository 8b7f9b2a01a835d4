"""Reads, holes included."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hpss_support import KiB, payload
from transfercore_hpss.driver import HpssDriver

from transfercore.errors import InvalidRead, IsADirectory, NotFound, ReaderClosed


def sparse_file(root: Path) -> bytes:
    """64 KiB data, 192 KiB hole, 64 KiB data, then a 128 KiB hole at the end."""
    head, tail = payload(64 * KiB, 2), payload(64 * KiB, 3)
    path = root / "s"
    with open(path, "wb") as f:
        f.write(head)
        f.seek(256 * KiB)
        f.write(tail)
        f.truncate(448 * KiB)
    fd = os.open(path, os.O_RDONLY)
    try:
        if os.lseek(fd, 0, os.SEEK_HOLE) != 64 * KiB:
            pytest.fail("this file system does not report holes; the gap tests need one that does")
    finally:
        os.close(fd)
    return head + bytes(192 * KiB) + tail + bytes(128 * KiB)


@pytest.mark.parametrize("version", ["7.5.3", "10.3.0"])
def test_holes_read_as_zeros_whether_or_not_eom_is_returned(
    driver: HpssDriver, emu_root: Path, monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    monkeypatch.setenv("HPSS_EMU_VERSION", version)  # 7.x returns HPSS_EOM with the gap
    expected = sparse_file(emu_root)
    with driver.open_read("/s") as r:
        assert r.size == len(expected)
        assert r.read(0, len(expected)) == expected
        assert r.read(100 * KiB, 200 * KiB) == expected[100 * KiB : 300 * KiB]
        assert r.read(440 * KiB, 100 * KiB) == expected[440 * KiB :]


def test_read_of_plain_file_and_errors(driver: HpssDriver, emu_root: Path) -> None:
    data = payload(300 * KiB + 7)
    (emu_root / "p").write_bytes(data)
    with driver.open_read("/p") as r:
        assert r.read(5, 300 * KiB) == data[5 : 300 * KiB + 5]
        assert r.read(len(data), 10) == b""
        for offset, length in ((-1, 10), (len(data) + 1, 10), (0, -1), (1.5, 10)):
            with pytest.raises(InvalidRead):
                r.read(offset, length)  # type: ignore[arg-type]
        assert r.read(0, 5) == data[:5]  # a refused read changes nothing
    with pytest.raises(ReaderClosed):
        r.read(0, 5)
    with pytest.raises(NotFound):
        driver.open_read("/missing")
    (emu_root / "d").mkdir()
    with pytest.raises(IsADirectory):
        driver.open_read("/d")


def test_hung_read_becomes_an_error(emu_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transfercore_hpss.api import HpssHung

    data = payload(512 * KiB)
    (emu_root / "h").write_bytes(data)
    monkeypatch.setenv("HPSS_EMU_READ_HANG_AFTER", str(128 * KiB))
    driver = HpssDriver(options={"block": "64KiB", "segment": "256KiB", "watchdog": 1.0})
    reader = driver.open_read("/h")
    assert reader.read(0, 128 * KiB) == data[: 128 * KiB]
    with pytest.raises(HpssHung):
        reader.read(128 * KiB, 64 * KiB)
    with pytest.raises(HpssHung):
        reader.close()
