"""A fresh writer finds an earlier writer's leftovers without a listing per object."""

import os

import pytest
from transfercore_posix import names, partials
from transfercore_posix.driver import PosixDriver

from transfercore.driverkit import new_token
from transfercore.ranges import ByteRange, RangeSet


@pytest.fixture
def listings(monkeypatch):
    """Counts the directory listings of the partials module."""
    calls: list[str] = []
    real = os.listdir

    def counted(path="."):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(partials.os, "listdir", counted)
    return calls


def _write(driver, path, data=b"x" * 10):
    writer = driver.open_write(path, len(data))
    writer.write(0, data)
    writer.complete()


def _orphan(directory, name):
    """A partial file of ``name`` with no record, as a writer killed before its first marker leaves."""
    path = os.path.join(directory, names.partial_name(name, new_token()))
    open(path, "wb").close()
    return path


def test_a_tree_into_one_directory_lists_it_once(tmp_path, listings):
    for i in range(300):
        (tmp_path / f"old{i:04}").write_bytes(b"")
    driver = PosixDriver()
    for i in range(50):
        _write(driver, str(tmp_path / f"f{i:03}"))
    assert listings == [str(tmp_path)]
    assert sorted(os.listdir(tmp_path))[-50:] == [f"old{i:04}" for i in range(250, 300)]
    assert not [n for n in os.listdir(tmp_path) if names.is_hidden(n)]


def test_a_leftover_seen_by_the_listing_is_removed(tmp_path):
    driver = PosixDriver()
    _write(driver, str(tmp_path / "a"))  # the directory is listed now
    orphan = _orphan(str(tmp_path), "b")
    temp = os.path.join(str(tmp_path), names.sidecar_temp_name("b"))
    open(temp, "wb").close()
    fresh = PosixDriver()  # lists it with the leftovers there
    writer = fresh.open_write(str(tmp_path / "b"), 3)
    assert not os.path.exists(orphan) and not os.path.exists(temp)
    writer.abort()


def test_an_aborted_writer_of_this_driver_is_cleared_by_the_next_fresh_one(tmp_path):
    driver = PosixDriver()
    _write(driver, str(tmp_path / "a"))
    first = driver.open_write(str(tmp_path / "b"), 10)
    first.write(0, b"12345")
    first.abort()
    assert os.path.exists(first.partial_path)
    second = driver.open_write(str(tmp_path / "b"), 10)
    assert not os.path.exists(first.partial_path)
    assert [n for n in os.listdir(tmp_path) if names.is_hidden(n)] == [os.path.basename(second.partial_path)]
    second.abort()


def test_another_writers_record_made_after_the_listing_is_found_by_its_name(tmp_path):
    driver = PosixDriver()
    _write(driver, str(tmp_path / "a"))
    other = PosixDriver().open_write(str(tmp_path / "b"), 10)
    other.write(0, b"12345")
    assert other.durable() == RangeSet.span(0, 5)
    other.abort()
    writer = driver.open_write(str(tmp_path / "b"), 10)
    assert [n for n in os.listdir(tmp_path) if names.is_hidden(n)] == [os.path.basename(writer.partial_path)]
    assert driver.partial(str(tmp_path / "b")) == RangeSet()
    writer.abort()


def test_range_writers_made_after_the_listing_are_found_by_their_anchor(tmp_path):
    driver = PosixDriver()
    _write(driver, str(tmp_path / "a"))
    ranged = PosixDriver().open_range_write(str(tmp_path / "b"), 10, ByteRange(0, 10), "w1")
    ranged.write(0, b"12345")
    ranged.durable()
    ranged.abort()
    assert os.path.exists(tmp_path / names.ranges_anchor_name("b"))
    writer = driver.open_write(str(tmp_path / "b"), 10)
    assert [n for n in os.listdir(tmp_path) if names.is_hidden(n)] == [os.path.basename(writer.partial_path)]
    writer.abort()


def test_an_unrecorded_leftover_made_after_the_listing_waits_for_the_next_listing(tmp_path, monkeypatch, listings):
    driver = PosixDriver()
    _write(driver, str(tmp_path / "a"))
    orphan = _orphan(str(tmp_path), "b")  # another process's writer, killed before its first marker
    writer = driver.open_write(str(tmp_path / "b"), 3)
    writer.abort()
    assert os.path.exists(orphan)  # trusted by nothing: no record names it
    assert driver.partial(str(tmp_path / "b")) == RangeSet()
    monkeypatch.setattr(partials, "LISTING_LIFETIME", 0.0)
    # The listing has expired: the next fresh writer lists again and clears both.
    writer = driver.open_write(str(tmp_path / "b"), 3)
    assert [n for n in os.listdir(tmp_path) if names.is_hidden(n)] == [os.path.basename(writer.partial_path)]
    writer.abort()
    assert len(listings) >= 2
