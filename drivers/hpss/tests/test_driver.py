"""Driver-level behaviour: options, description, resume validation, namespace."""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import pytest
from hpss_support import KiB, payload
from transfercore_hpss.driver import HpssDriver

from transfercore.capabilities import RestartModel
from transfercore.errors import LocationError, NotFound, OptionError, RestartRejected
from transfercore.ranges import ByteRange, RangeSet
from transfercore.registry import list_drivers, open_location


def test_registered_and_described_through_the_registry(emu_root: Path) -> None:
    info = {d.name: d for d in list_drivers()}["hpss"]
    assert info.details["backend"] == "emulator"
    assert info.details["hpss_version"] == "10.3.0"
    endpoint = open_location("hpss:///dir/file?segment=1MiB&block=256KiB")
    assert isinstance(endpoint.driver, HpssDriver)
    assert (endpoint.driver.segment, endpoint.driver.block) == (1 << 20, 256 * KiB)
    caps = endpoint.driver.capabilities()
    assert caps.restart is RestartModel.PREFIX and caps.ordered_writes and caps.max_writers == 1
    assert "md5" in caps.checksums


def test_bad_options_and_urls_are_refused() -> None:
    with pytest.raises(OptionError, match="multiple of block"):
        open_location("hpss:///f?segment=100KiB&block=64KiB")
    with pytest.raises(OptionError):
        open_location("hpss:///f?stripes=4")
    with pytest.raises(LocationError):
        open_location("hpss://somehost/f")


def test_resume_marker_must_be_a_prefix_backed_by_the_file(driver: HpssDriver, emu_root: Path) -> None:
    (emu_root / "f").write_bytes(payload(100 * KiB))
    with pytest.raises(RestartRejected):
        driver.open_write("/f", 200 * KiB, RangeSet([ByteRange(10, 50)]))
    with pytest.raises(RestartRejected):
        driver.open_write("/f", 200 * KiB, RangeSet([ByteRange(0, 150 * KiB)]))
    with pytest.raises(RestartRejected):
        driver.open_write("/missing", 200 * KiB, RangeSet([ByteRange(0, 10)]))
    with pytest.raises(RestartRejected):
        driver.open_write("/f", 50, RangeSet([ByteRange(0, 60)]))
    w = driver.open_write("/f", 200 * KiB, RangeSet([ByteRange(0, 100 * KiB)]))
    w.abort()
    # A resume opens without truncation.
    assert (emu_root / "f").stat().st_size >= 100 * KiB


def test_stat_namespace_and_errors(driver: HpssDriver, emu_root: Path) -> None:
    driver.mkdir("/d")
    (emu_root / "d" / "a").write_bytes(b"abc")
    info = driver.stat("/d/a")
    assert (info.size, info.is_dir, info.name) == (3, False, "a")
    assert driver.stat("/d").is_dir
    driver.rename("/d/a", "/d/b")
    assert (emu_root / "d" / "b").read_bytes() == b"abc"
    driver.remove("/d/b")
    driver.rmdir("/d")
    with pytest.raises(NotFound):
        driver.stat("/d")
    with pytest.raises(NotFound):
        driver.remove("/nothing")


def test_checksums_by_reading_back(driver: HpssDriver, emu_root: Path) -> None:
    data = payload(700 * KiB)
    (emu_root / "c").write_bytes(data)
    assert driver.checksum("/c", "adler32") == f"{zlib.adler32(data):08x}"
    assert driver.checksum("/c", "SHA256") == hashlib.sha256(data).hexdigest()
    assert driver.checksum("/c", "md5") == hashlib.md5(data).hexdigest()
    # A stored value for another size is not trusted.
    (emu_root / "c").write_bytes(data + b"x")
    assert driver.checksum("/c", "md5") == hashlib.md5(data + b"x").hexdigest()
