import hashlib
import subprocess
import sys
import textwrap

import pytest
from mock_support import open_mock, payload

from transfercore.capabilities import RestartModel
from transfercore.errors import (
    AlreadyExists,
    InvalidWrite,
    IsADirectory,
    LocationError,
    NotADirectory,
    NotFound,
    OptionError,
    RestartRejected,
    StorageError,
)
from transfercore.ranges import RangeSet
from transfercore.registry import list_drivers


def _crash_and_resume(url, size=100):
    """Write half, take a marker, write more, crash, resume with the marker, finish.
    Returns (marker, bytes written before the marker, final object)."""
    driver, path = open_mock(url)
    data = payload(size)
    writer = driver.open_write(path, size)
    writer.write(0, data[:30])
    writer.write(50, data[50:60])
    marker = writer.durable()
    written = writer.written
    writer.write(30, data[30:40])
    driver.simulate_crash()
    resumed = driver.open_write(path, size, marker)
    for r in marker.complement(size):
        resumed.write(r.start, data[r.start : r.end])
    resumed.complete()
    return marker, written, data, driver.open_read(path).read(0, size)


def test_registered_with_capabilities_by_model():
    info = {d.name: d for d in list_drivers()}["mock"]
    assert not info.broken and info.distribution == "transfercore-mock"
    caps = {m: open_mock(f"mock://s/x?model={m}")[0].capabilities() for m in ("ranges", "prefix", "none")}
    assert caps["ranges"].restart is RestartModel.RANGES and caps["ranges"].max_writers == 16
    assert caps["prefix"].restart is RestartModel.PREFIX and caps["prefix"].ordered_writes
    assert caps["prefix"].max_writers == 1
    assert caps["none"].restart is RestartModel.NONE
    assert caps["ranges"].crash_simulation and "md5" in caps["ranges"].checksums


def test_bad_options_are_refused():
    with pytest.raises(OptionError, match="lie"):
        open_mock("mock://s/x?lie=sometimes")
    with pytest.raises(OptionError, match="model"):
        open_mock("mock://s/x?model=tape")


def test_honest_store_resumes_exactly():
    marker, written, data, final = _crash_and_resume("mock://honest/obj")
    assert written.contains(marker)
    assert final == data


def test_early_marker_lie_loses_marked_bytes_on_crash():
    marker, written, data, final = _crash_and_resume("mock://liar/obj?lie=early-marker")
    assert written.contains(marker)  # the marker names written bytes ...
    assert final[:30] != data[:30]  # ... that were not durable: the object has a gap


def test_wide_marker_lie_reports_bytes_never_written():
    marker, written, data, final = _crash_and_resume("mock://liar/obj?lie=wide-marker&block=8")
    assert not written.contains(marker)
    assert marker - written == RangeSet.span(30, 38)
    assert final[30:38] == b"\0" * 8 != data[30:38]


def test_forget_record_lie_trusts_the_caller_after_losing_its_record():
    driver, path = open_mock("mock://liar/obj?lie=forget-record")
    writer = driver.open_write(path, 10)
    writer.write(0, b"01234")
    marker = writer.durable()
    driver.simulate_crash()
    assert driver.partial(path) == RangeSet()  # the record is gone ...
    resumed = driver.open_write(path, 10, marker)  # ... yet the marker is accepted
    resumed.write(5, b"56789")
    resumed.complete()
    assert driver.open_read(path).read(0, 10) == b"\0" * 5 + b"56789"


def test_resume_rejections():
    driver, path = open_mock("mock://s/obj")
    with pytest.raises(RestartRejected, match="no durable resume record"):
        driver.open_write(path, 10, RangeSet.span(0, 5))
    writer = driver.open_write(path, 10)
    writer.write(0, b"01234")
    writer.write(5, b"5")
    assert writer.durable() == RangeSet.span(0, 6)
    writer.write(6, b"6")
    writer.abort()
    with pytest.raises(RestartRejected, match="missing 6-7"):
        driver.open_write(path, 10, RangeSet.span(0, 7))
    with pytest.raises(RestartRejected, match="size 10, not 11"):
        driver.open_write(path, 11, RangeSet.span(0, 6))
    with pytest.raises(RestartRejected, match="past the size"):
        driver.open_write(path, 10, RangeSet.span(0, 12))
    accepted = driver.open_write(path, 10, RangeSet.span(0, 3))
    assert driver.partial(path) == RangeSet.span(0, 3)
    with pytest.raises(InvalidWrite):
        accepted.write(2, b"x")


def test_prefix_and_none_models_refuse_what_they_cannot_resume():
    driver, path = open_mock("mock://p/obj?model=prefix")
    w = driver.open_write(path, 10)
    w.write(0, b"0123")
    w.durable()
    w.abort()
    with pytest.raises(RestartRejected, match="not a prefix"):
        driver.open_write(path, 10, RangeSet.span(1, 4))
    driver.open_write(path, 10, RangeSet.span(0, 4)).abort()
    driver, path = open_mock("mock://n/obj?model=none")
    w = driver.open_write(path, 10)
    w.write(0, b"0123")
    assert w.durable() == RangeSet()
    assert driver.partial(path) == RangeSet()
    with pytest.raises(RestartRejected, match="model=none"):
        driver.open_write(path, 10, RangeSet.span(0, 4))


def test_stores_are_shared_by_name_and_separate_by_name():
    a, path = open_mock("mock://shared/obj")
    b, _ = open_mock("mock://shared/obj")
    other, _ = open_mock("mock://elsewhere/obj")
    w = a.open_write(path, 3)
    w.write(0, b"abc")
    w.complete()
    assert b.open_read(path).read(0, 3) == b"abc"
    with pytest.raises(NotFound):
        other.stat(path)


def test_storage_checksums():
    driver, path = open_mock("mock://s/obj")
    data = payload(3 << 20)
    w = driver.open_write(path, len(data))
    w.write(0, data)
    w.complete()
    assert driver.checksum(path, "MD5") == hashlib.md5(data).hexdigest()
    assert driver.checksum(path, "sha-256") == hashlib.sha256(data).hexdigest()
    assert driver.checksum(path, "sha512") is None


def test_namespace():
    driver, _ = open_mock("mock://ns/")
    driver.mkdir("/d")
    with pytest.raises(AlreadyExists):
        driver.mkdir("/d")
    w = driver.open_write("/d/e/f", 2)
    w.write(0, b"hi")
    w.complete()
    assert [(i.path, i.is_dir) for i in driver.list("/")] == [("/d", True)]
    assert [(i.path, i.is_dir) for i in driver.list("/d")] == [("/d/e", True)]
    with pytest.raises(NotADirectory):
        list(driver.list("/d/e/f"))
    with pytest.raises(IsADirectory):
        driver.open_write("/d/e", 1)
    with pytest.raises(IsADirectory):
        driver.open_read("/d")
    with pytest.raises(StorageError, match="not empty"):
        driver.rmdir("/d")
    driver.rename("/d", "/moved")
    assert driver.open_read("/moved/e/f").read(0, 2) == b"hi"
    driver.rename("/moved/e/f", "/g")
    driver.remove("/g")
    with pytest.raises(NotFound):
        driver.remove("/g")
    driver.rmdir("/moved")
    assert list(driver.list("/")) == []
    with pytest.raises(LocationError):
        driver.stat("/a/../b")


def test_partial_objects_are_invisible():
    driver, path = open_mock("mock://s/obj")
    w = driver.open_write(path, 5)
    w.write(0, b"ab")
    w.durable()
    with pytest.raises(NotFound):
        driver.stat(path)
    assert list(driver.list("/")) == []
    driver.discard_partial(path)
    assert driver.partial(path) == RangeSet()


def test_directory_store_is_shared_across_processes_and_keeps_only_durable_bytes(tmp_path):
    url = f"mock://shared/obj?dir={tmp_path}"
    script = textwrap.dedent(f"""
        import os
        from transfercore.registry import open_location
        ep = open_location({url!r})
        w = ep.driver.open_write(ep.path, 10)
        w.write(0, b"01234")
        print(w.durable(), flush=True)  # os._exit skips the flush of a piped stdout
        w.write(5, b"56789")
        os._exit(9)  # dies without completing: a crash of the writing process
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    marker = RangeSet.parse(proc.stdout.strip())
    driver, path = open_mock(url)
    assert driver.partial(path) == marker == RangeSet.span(0, 5)
    w = driver.open_write(path, 10, marker)
    w.write(5, b"56789")
    w.complete()
    assert driver.open_read(path).read(0, 10) == b"0123456789"
    assert [i.name for i in driver.list("/")] == ["obj"]


def test_spill_store_behaves_like_memory():
    marker, written, data, final = _crash_and_resume("mock://big/obj?spill=true")
    assert final == data
