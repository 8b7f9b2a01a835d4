import json
import os

import pytest
from posix_support import payload
from transfercore_posix import names, sidecar
from transfercore_posix.driver import PosixDriver

from transfercore.capabilities import RestartModel
from transfercore.driverkit import new_token
from transfercore.errors import (
    AlreadyExists,
    InvalidWrite,
    IsADirectory,
    NotADirectory,
    NotFound,
    PathEscapesRoot,
    PermissionDenied,
    RestartRejected,
    StorageError,
)
from transfercore.ranges import RangeSet
from transfercore.registry import list_drivers, open_location


def _interrupted(driver, target, size=100):
    """An object half written and made durable, then abandoned: returns (data, marker)."""
    data = payload(size)
    writer = driver.open_write(target, size)
    writer.write(0, data[:40])
    writer.write(60, data[60:80])
    marker = writer.durable()
    writer.write(40, data[40:50])  # never made durable
    writer.abort()
    return data, marker


def _finish(driver, target, data, marker):
    writer = driver.open_write(target, len(data), marker)
    for r in marker.complement(len(data)):
        writer.write(r.start, data[r.start : r.end])
    writer.complete()
    with open(target, "rb") as handle:
        assert handle.read() == data


def test_registered_and_capabilities():
    info = {d.name: d for d in list_drivers()}["posix"]
    assert not info.broken and info.distribution == "transfercore-posix"
    caps = PosixDriver().capabilities()
    assert caps.restart is RestartModel.RANGES and caps.atomic_publish and caps.max_writers == 16


def test_open_location_with_options(tmp_path):
    ep = open_location(f"posix:///a/b?root={tmp_path}&max_writers=4")
    assert ep.driver.capabilities().max_writers == 4
    assert ep.driver.local_path(ep.path) == os.path.join(os.path.realpath(tmp_path), "a", "b")


def test_resume_after_interruption_gives_the_exact_object(driver, target):
    data, marker = _interrupted(driver, target)
    assert marker == RangeSet.of((0, 40), (60, 80))
    assert driver.partial(target) == marker
    _finish(driver, target, data, marker)
    assert driver.partial(target) == RangeSet()


def test_resume_with_a_smaller_marker_rewrites_the_rest(driver, target):
    data, marker = _interrupted(driver, target)
    smaller = RangeSet.span(0, 20)
    writer = driver.open_write(target, 100, smaller)
    assert driver.partial(target) == smaller  # the record no longer vouches for 20-40, 60-80
    for r in smaller.complement(100):
        writer.write(r.start, data[r.start : r.end])
    writer.complete()
    assert open(target, "rb").read() == data


def test_resume_marker_not_durable_is_rejected(driver, target):
    _data, marker = _interrupted(driver, target)
    with pytest.raises(RestartRejected, match="missing 40-50"):
        driver.open_write(target, 100, marker | RangeSet.span(40, 50))


def test_resume_without_a_record_is_rejected(driver, target):
    with pytest.raises(RestartRejected, match="no durable resume record") as info:
        driver.open_write(target, 100, RangeSet.span(0, 10))
    assert "start again from zero" in str(info.value)


def test_resume_with_another_size_is_rejected(driver, target):
    _data, marker = _interrupted(driver, target)
    with pytest.raises(RestartRejected, match="size 100, not 200"):
        driver.open_write(target, 200, marker)


def test_resume_marker_past_the_size_is_rejected(driver, target):
    with pytest.raises(RestartRejected, match="past the size"):
        driver.open_write(target, 10, RangeSet.span(0, 20))


def test_replaced_partial_file_is_rejected(driver, target):
    _data, marker = _interrupted(driver, target)
    record = sidecar.load(*os.path.split(target))
    partial = os.path.join(os.path.dirname(target), names.partial_name("obj.bin", record.token))
    os.rename(partial, partial + ".old")
    with open(partial, "wb") as handle:  # same name, same size, another file
        handle.write(b"\0" * 100)
    with pytest.raises(RestartRejected, match="replaced"):
        driver.open_write(target, 100, marker)
    assert driver.partial(target) == RangeSet()


def test_missing_or_truncated_partial_file_is_rejected(driver, target):
    _data, marker = _interrupted(driver, target)
    record = sidecar.load(*os.path.split(target))
    partial = os.path.join(os.path.dirname(target), names.partial_name("obj.bin", record.token))
    os.truncate(partial, 50)
    with pytest.raises(RestartRejected, match="less than the recorded 80"):
        driver.open_write(target, 100, marker)
    os.unlink(partial)
    with pytest.raises(RestartRejected, match="gone"):
        driver.open_write(target, 100, marker)


def test_corrupt_record_is_rejected(driver, target):
    _data, marker = _interrupted(driver, target)
    path = os.path.join(os.path.dirname(target), names.sidecar_name("obj.bin"))
    doc = json.loads(open(path).read())
    doc["ranges"] = "0-100"
    with open(path, "w") as handle:
        json.dump(doc, handle)
    with pytest.raises(RestartRejected, match="checksum"):
        driver.open_write(target, 100, RangeSet.span(0, 100))
    assert driver.partial(target) == RangeSet()


def test_fresh_open_discards_old_partial_state(driver, target):
    _interrupted(driver, target)
    # An orphan from a crash between creating a partial file and its first record.
    orphan = os.path.join(os.path.dirname(target), names.partial_name("obj.bin", new_token()))
    open(orphan, "wb").close()
    writer = driver.open_write(target, 5)
    entries = os.listdir(os.path.dirname(target))
    assert entries == [os.path.basename(writer.partial_path)]
    assert driver.partial(target) == RangeSet()
    writer.abort()


def test_discard_partial(driver, target):
    _data, marker = _interrupted(driver, target)
    driver.discard_partial(target)
    assert os.listdir(os.path.dirname(target)) == []
    with pytest.raises(RestartRejected):
        driver.open_write(target, 100, marker)


def test_complete_replaces_an_existing_object_atomically(driver, target):
    with open(target, "wb") as handle:
        handle.write(b"old contents")
    writer = driver.open_write(target, 3)
    writer.write(0, b"new")
    assert open(target, "rb").read() == b"old contents"
    writer.complete()
    assert open(target, "rb").read() == b"new"


def test_bad_inputs(driver, tmp_path):
    with pytest.raises(InvalidWrite):
        driver.open_write(str(tmp_path / "f"), -1)
    with pytest.raises(InvalidWrite):
        driver.open_write(str(tmp_path / "f"), 10, resume="0-5")
    with pytest.raises(NotFound, match="does not exist") as info:
        driver.open_write(str(tmp_path / "missing" / "f"), 10)
    assert "create the directory first" in str(info.value)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(NotADirectory):
        driver.open_write(str(tmp_path / "file" / "f"), 10)
    (tmp_path / "dir").mkdir()
    with pytest.raises(IsADirectory):
        driver.open_write(str(tmp_path / "dir"), 10)
    with pytest.raises(IsADirectory):
        driver.open_read(str(tmp_path / "dir"))
    with pytest.raises(NotFound):
        driver.open_read(str(tmp_path / "nothing"))
    with pytest.raises(NotFound):
        driver.stat(str(tmp_path / "nothing"))


def test_permission_denied_is_mapped(driver, tmp_path, monkeypatch):
    real = os.open

    def denied(path, flags, *args, **kw):
        if str(path).startswith(str(tmp_path)):
            raise PermissionError(13, "Permission denied", path)
        return real(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(PermissionDenied, match="partial file") as info:
        driver.open_write(str(tmp_path / "f"), 10)
    assert "permissions" in str(info.value)


def test_list_hides_partial_state(driver, tmp_path):
    (tmp_path / "done").write_bytes(b"abc")
    (tmp_path / "sub").mkdir()
    _interrupted(driver, str(tmp_path / "half"))
    listing = list(driver.list(str(tmp_path)))
    assert [(i.name, i.is_dir) for i in listing] == [("done", False), ("sub", True)]
    assert listing[0].size == 3
    assert listing[0].path == str(tmp_path / "done")
    with pytest.raises(NotADirectory):
        list(driver.list(str(tmp_path / "done")))


def test_namespace_operations(driver, tmp_path):
    base = str(tmp_path)
    driver.mkdir(base + "/d")
    with pytest.raises(AlreadyExists):
        driver.mkdir(base + "/d")
    (tmp_path / "d" / "f").write_bytes(b"12345")
    assert driver.stat(base + "/d/f").size == 5
    assert driver.stat(base + "/d").is_dir
    driver.rename(base + "/d/f", base + "/g")
    assert driver.stat(base + "/g").identity
    with pytest.raises(IsADirectory):
        driver.remove(base + "/d")
    driver.rmdir(base + "/d")
    driver.remove(base + "/g")
    with pytest.raises(NotFound):
        driver.remove(base + "/g")
    assert os.listdir(tmp_path) == []


def test_rmdir_of_a_non_empty_directory_is_a_storage_error(driver, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"")
    with pytest.raises(StorageError):
        driver.rmdir(str(tmp_path / "d"))


def test_confined_driver_writes_inside_the_root_only(tmp_path):
    (tmp_path / "srv").mkdir()
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", tmp_path / "srv" / "escape")
    ep = open_location(f"posix:///f?root={tmp_path / 'srv'}")
    d = ep.driver
    writer = d.open_write("/f", 2)
    writer.write(0, b"hi")
    writer.complete()
    assert (tmp_path / "srv" / "f").read_bytes() == b"hi"
    assert [i.path for i in d.list("/")] == ["/f"]  # the escaping link is not shown
    for attempt in (lambda: d.open_write("/escape/f", 1), lambda: d.open_write("/../outside/f", 1),
                    lambda: d.stat("/escape"), lambda: d.mkdir("/escape/x"),
                    lambda: d.rename("/f", "/escape/f"), lambda: d.open_read("/escape/x")):
        with pytest.raises(PathEscapesRoot):
            attempt()
    with pytest.raises(PermissionDenied):
        d.rmdir("/")
    assert os.listdir(tmp_path / "outside") == []


def test_remote_hosts_are_refused():
    from transfercore.errors import LocationError

    with pytest.raises(LocationError, match="local files"):
        open_location("posix://otherhost/data/f")


def _stale_temp_record(target):
    # A writer killed between writing its new record and renaming it into place.
    directory, name = os.path.split(target)
    temp = os.path.join(directory, names.sidecar_temp_name(name))
    with open(temp, "wb") as handle:
        handle.write(b"{half a record")
    return temp


def test_resuming_clears_a_dead_writers_temporary_record(driver, target):
    data, marker = _interrupted(driver, target)
    temp = _stale_temp_record(target)
    other = os.path.join(os.path.dirname(target), names.sidecar_temp_name("obj.bin.other"))
    open(other, "wb").close()  # another object's: left alone
    _finish(driver, target, data, marker)
    assert not os.path.exists(temp)
    assert sorted(os.listdir(os.path.dirname(target))) == sorted(["obj.bin", os.path.basename(other)])


def test_discard_partial_clears_a_dead_writers_temporary_record(driver, target):
    _interrupted(driver, target)
    _stale_temp_record(target)
    driver.discard_partial(target)
    assert os.listdir(os.path.dirname(target)) == []


@pytest.mark.parametrize("confined", [False, True])
def test_a_fresh_write_looks_at_its_directory_only_when_it_cannot_create_there(tmp_path, monkeypatch, confined):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_bytes(b"")
    os.symlink(tmp_path / "dir", tmp_path / "link")
    if confined:
        d = open_location(f"posix:///?root={tmp_path}").driver
        at = lambda name: "/" + name  # noqa: E731
    else:
        d = PosixDriver()
        at = lambda name: str(tmp_path / name)  # noqa: E731
    stats: list[object] = []
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: stats.append(p) or real_stat(p, *a, **k))
    # a new name in an existing directory: the one lstat of the name says all (no stat of the
    # directory, nor of the name to see whether it is a directory)
    writer = d.open_write(at("new"), 2)
    writer.write(0, b"ok")
    writer.complete()
    assert stats == []
    assert (tmp_path / "new").read_bytes() == b"ok"
    # and every wrong place still gets its clear error
    with pytest.raises(NotFound, match="does not exist"):
        d.open_write(at("missing/f"), 1)
    with pytest.raises(NotADirectory):
        d.open_write(at("file/f"), 1)
    for name in ("dir", "link"):
        with pytest.raises(IsADirectory):
            d.open_write(at(name), 1)
    assert sorted(os.listdir(tmp_path)) == ["dir", "file", "link", "new"]
