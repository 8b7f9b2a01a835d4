"""Driver-level behaviour: options, description, resume validation, namespace."""

from __future__ import annotations

import errno
import hashlib
import os
import zlib
from pathlib import Path

import pytest
from hpss_support import KiB, payload
from transfercore_hpss import record
from transfercore_hpss.driver import HpssDriver

from transfercore.capabilities import RestartModel
from transfercore.errors import (
    LocationError,
    NotADirectory,
    NotFound,
    OptionError,
    RestartRejected,
    StorageError,
)
from transfercore.ranges import RangeSet
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
    assert "md5" in caps.checksums and caps.atomic_publish


def test_bad_options_and_urls_are_refused() -> None:
    with pytest.raises(OptionError, match="multiple of block"):
        open_location("hpss:///f?segment=100KiB&block=64KiB")
    with pytest.raises(OptionError):
        open_location("hpss:///f?stripes=4")
    with pytest.raises(LocationError):
        open_location("hpss://somehost/f")


def partial_write(driver: HpssDriver, path: str, data: bytes, upto: int) -> RangeSet:
    """Write data[:upto] and stop, as a crash would; returns the marker."""
    w = driver.open_write(path, len(data))
    w.write(0, data[:upto])
    marker = w.durable()
    w.abort()
    return marker


def test_resume_needs_a_record_of_the_same_write(driver: HpssDriver, emu_root: Path) -> None:
    data = payload(1024 * KiB)
    # Bytes HPSS holds are not enough: without the driver's record nothing is trusted.
    (emu_root / "plain").write_bytes(data)
    with pytest.raises(RestartRejected, match="partial file does not exist"):
        driver.open_write("/plain", len(data), RangeSet.span(0, 100 * KiB))
    (emu_root / ".plain.tcpart").write_bytes(data)
    with pytest.raises(RestartRejected, match="no resume record"):
        driver.open_write("/plain", len(data), RangeSet.span(0, 100 * KiB))
    with pytest.raises(RestartRejected, match="partial file does not exist"):
        driver.open_write("/missing", len(data), RangeSet.span(0, 10))

    marker = partial_write(driver, "/f", data, 600 * KiB)
    assert marker == RangeSet.span(0, 512 * KiB)  # two whole segments
    # abort() ended the third segment's Execute, which acknowledged its whole blocks.
    held = record.load("/.f.tcpart")
    assert held is not None and held.durable == 576 * KiB
    assert not (emu_root / "f").exists()
    assert driver.partial("/f") == RangeSet.span(0, held.durable)
    with pytest.raises(RestartRejected, match="only a prefix"):
        driver.open_write("/f", len(data), RangeSet.span(10, 50))
    with pytest.raises(RestartRejected, match="size 1048576, this one 1048577"):
        driver.open_write("/f", len(data) + 1, marker)
    with pytest.raises(RestartRejected, match="past the size"):
        driver.open_write("/f", 100, marker)
    # The file holds more bytes than the record says are durable: the record decides.
    os.truncate(emu_root / ".f.tcpart", len(data))
    with pytest.raises(RestartRejected, match="past the durable end 589824"):
        driver.open_write("/f", len(data), RangeSet.span(0, 640 * KiB))
    # The rejections changed nothing: the true marker is accepted, and the
    # record now claims only the resumed prefix.
    w = driver.open_write("/f", len(data), marker)
    assert w.resumed == marker
    w.abort()
    assert driver.partial("/f") == marker


def test_resume_needs_the_bytes_and_the_same_file(driver: HpssDriver, emu_root: Path) -> None:
    data = payload(1024 * KiB, seed=2)
    marker = partial_write(driver, "/f", data, 300 * KiB)
    assert marker == RangeSet.span(0, 256 * KiB)
    # Bytes lost behind the driver's back (the DSI's st_size check).
    os.truncate(emu_root / ".f.tcpart", 200 * KiB)
    with pytest.raises(RestartRejected, match="past the 204800 bytes HPSS holds"):
        driver.open_write("/f", len(data), marker)
    assert driver.partial("/f") == RangeSet()
    # A different file under the same name, with the old record left behind.
    marker = partial_write(driver, "/g", data, 300 * KiB)
    replacement = emu_root / "g.new"
    replacement.write_bytes(data)
    os.replace(replacement, emu_root / ".g.tcpart")
    with pytest.raises(RestartRejected, match="replaced"):
        driver.open_write("/g", len(data), marker)
    assert driver.partial("/g") == RangeSet()


def test_fresh_write_complete_and_discard_forget_the_record(driver: HpssDriver, emu_root: Path) -> None:
    data = payload(700 * KiB, seed=3)
    old = partial_write(driver, "/f", data, 600 * KiB)
    assert old == RangeSet.span(0, 512 * KiB)
    # A fresh write of the same path starts a new record: the old marker is void.
    w = driver.open_write("/f", len(data))
    w.write(0, data[:10])
    with pytest.raises(RestartRejected, match="past the durable end 0"):
        driver.open_write("/f", len(data), old)
    w.abort()
    assert driver.partial("/f") == RangeSet()
    marker = partial_write(driver, "/f", data, 300 * KiB)
    assert driver.partial("/f") == marker
    driver.discard_partial("/f")
    assert driver.partial("/f") == RangeSet() and not (emu_root / ".f.tcpart").exists()
    with pytest.raises(RestartRejected, match="partial file does not exist"):
        driver.open_write("/f", len(data), marker)
    # A completed write leaves no record: it is not a partial write any more.
    w = driver.open_write("/f", len(data))
    w.write(0, data)
    w.complete()
    assert record.load("/f") is None and driver.partial("/f") == RangeSet()
    assert not (emu_root / ".f.tcpart").exists() and (emu_root / "f").read_bytes() == data
    with pytest.raises(RestartRejected, match="partial file does not exist"):
        driver.open_write("/f", len(data), RangeSet.span(0, len(data)))
    driver.discard_partial("/missing")  # nothing to forget is no error


def test_stat_namespace_and_errors(driver: HpssDriver, emu_root: Path) -> None:
    driver.mkdir("/d")
    (emu_root / "d" / "a").write_bytes(b"abc")
    info = driver.stat("/d/a")
    assert (info.size, info.is_dir, info.name) == (3, False, "a")
    assert info.mtime_ns == int((emu_root / "d" / "a").stat().st_mtime) * 1_000_000_000
    assert info.identity == f"hpss:{(emu_root / 'd' / 'a').stat().st_ino}"
    assert driver.stat("/d").is_dir
    driver.rename("/d/a", "/d/b")
    assert (emu_root / "d" / "b").read_bytes() == b"abc"
    driver.remove("/d/b")
    driver.rmdir("/d")
    with pytest.raises(NotFound):
        driver.stat("/d")
    with pytest.raises(NotFound):
        driver.remove("/nothing")


def test_list_directories_through_the_api(driver: HpssDriver, emu_root: Path) -> None:
    driver.mkdir("/top")
    driver.mkdir("/top/sub")
    w = driver.open_write("/top/file", 5)
    w.write(0, b"hello")
    w.complete()
    listing = list(driver.list("/top"))
    assert [(i.path, i.name, i.is_dir, i.size) for i in listing] == [
        ("/top/file", "file", False, 5),
        ("/top/sub", "sub", True, listing[1].size),
    ]
    assert list(driver.list("/top/sub")) == []
    # The emulator's attribute store never shows in the namespace.
    assert [i.name for i in driver.list("/")] == ["top"]
    with pytest.raises(NotFound):
        list(driver.list("/none"))
    with pytest.raises(NotADirectory):
        list(driver.list("/top/file"))
    with pytest.raises(StorageError) as excinfo:
        driver.rmdir("/top")
    assert excinfo.value.errno == errno.ENOTEMPTY


def test_renamed_partial_write_keeps_its_record(driver: HpssDriver, emu_root: Path) -> None:
    data = payload(600 * KiB, seed=4)
    driver.mkdir("/a")
    marker = partial_write(driver, "/a/f", data, 300 * KiB)
    driver.rename("/a", "/b")
    assert driver.partial("/b/f") == marker
    w = driver.open_write("/b/f", len(data), marker)
    w.write(marker.prefix_end(), data[marker.prefix_end() :])
    w.complete()
    assert (emu_root / "b" / "f").read_bytes() == data


def test_checksums_by_reading_back(driver: HpssDriver, emu_root: Path) -> None:
    data = payload(700 * KiB)
    (emu_root / "c").write_bytes(data)
    assert driver.checksum("/c", "adler32") == f"{zlib.adler32(data):08x}"
    assert driver.checksum("/c", "SHA256") == hashlib.sha256(data).hexdigest()
    assert driver.checksum("/c", "md5") == hashlib.md5(data).hexdigest()
    # A stored value for another size is not trusted.
    (emu_root / "c").write_bytes(data + b"x")
    assert driver.checksum("/c", "md5") == hashlib.md5(data + b"x").hexdigest()


def test_stat_follows_a_link_as_the_reader_does_and_lstat_does_not(driver: HpssDriver, emu_root: Path) -> None:
    # A link made by another HPSS client (the driver creates none): its size
    # is the target's, as the bytes a read returns.
    (emu_root / "target").write_bytes(b"x" * 5000)
    os.symlink("target", emu_root / "link")
    assert driver.stat("/link").size == 5000
    with driver.open_read("/link") as reader:
        assert reader.size == 5000
    assert driver.lstat("/link").size == len("target")
    with pytest.raises(NotFound):
        os.symlink("nowhere", emu_root / "dangling")
        driver.stat("/dangling")
