"""The driver toolkit: checks, standard errors, durable steps, the mutable range set, checksums."""

import errno
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transfercore.capabilities import Capabilities
from transfercore.checksums import digest_bytes
from transfercore.contract import Driver, ObjectInfo, Reader, Writer
from transfercore.driverkit import (
    TOKEN_HEX,
    Intervals,
    check_open_write,
    checksum_range,
    fsync_dir,
    never_written_error,
    new_token,
    overlap_error,
    read_exact,
)
from transfercore.errors import InvalidWrite, NotFound, ShortRead, StorageError
from transfercore.options import int_option, str_option
from transfercore.ranges import RangeSet

spans = st.lists(st.tuples(st.integers(0, 200), st.integers(0, 40)).map(lambda t: (t[0], t[0] + t[1])), max_size=30)


@given(spans)
def test_add_agrees_with_rangeset_union(pairs):
    iv = Intervals()
    model = RangeSet()
    for a, b in pairs:
        iv.add(a, b)
        model = model | RangeSet.span(a, b)
        assert iv.to_rangeset() == model
    assert iv.total() == model.total()
    assert len(iv) == len(model)


@given(spans, st.integers(0, 240), st.integers(0, 40))
def test_overlaps_and_covers_agree_with_rangeset(pairs, start, length):
    iv = Intervals()
    for a, b in pairs:
        iv.add(a, b)
    model = iv.to_rangeset()
    probe = RangeSet.span(start, start + length)
    assert iv.overlaps(start, start + length) == bool(model & probe)
    assert iv.covers(start, start + length) == model.contains(probe)


def test_adjacent_writes_merge_into_one_interval():
    iv = Intervals()
    for i in range(1000):
        iv.add(i * 10, i * 10 + 10)
    assert len(iv) == 1
    assert iv.to_rangeset() == RangeSet.span(0, 10_000)


def test_starts_from_an_existing_set():
    iv = Intervals(RangeSet.of((0, 5), (10, 20)))
    assert iv.overlaps(4, 6) and not iv.overlaps(5, 10)


# -- the checks and the standard errors -------------------------------------------------


@pytest.mark.parametrize("size", [-1, 1.5, "10", True])
def test_open_write_refuses_a_size_that_is_not_a_non_negative_whole_number(size):
    with pytest.raises(InvalidWrite, match="is not a non-negative whole number"):
        check_open_write(size, None, "x://obj")


def test_open_write_refuses_a_marker_that_is_not_a_rangeset_and_treats_an_empty_one_as_fresh():
    with pytest.raises(InvalidWrite, match="must be a RangeSet, not str"):
        check_open_write(10, "0-5", "x://obj")
    assert check_open_write(10, RangeSet(), "x://obj") is None
    assert check_open_write(10, RangeSet.span(0, 5), "x://obj") == RangeSet.span(0, 5)


def test_the_standard_write_errors_name_the_object_and_the_bytes():
    overlap = overlap_error("x://obj", 5, 9)
    assert isinstance(overlap, InvalidWrite) and "write 5-9 to x://obj overlaps" in str(overlap)
    missing = never_written_error("x://obj", RangeSet.of((3, 7)))
    assert isinstance(missing, InvalidWrite) and "bytes 3-7 were never written" in str(missing)


def test_read_exact_passes_whole_reads_and_raises_short_read_for_the_rest():
    assert read_exact(b"abcd", 0, 4, "x://obj") == b"abcd"
    with pytest.raises(ShortRead, match="short read of x://obj at offset 8: 2 of 4 bytes") as info:
        read_exact(b"ab", 8, 4, "x://obj")
    assert isinstance(info.value, StorageError) and info.value.errno == errno.EIO


def test_fsync_dir_syncs_a_directory_and_a_missing_one_is_not_found(tmp_path):
    fsync_dir(str(tmp_path))
    with pytest.raises(NotFound):
        fsync_dir(str(tmp_path / "missing"))


def test_new_tokens_are_distinct_hex():
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50 and all(len(t) == TOKEN_HEX and int(t, 16) >= 0 for t in tokens)


# -- checksums -------------------------------------------------------------------------------


class _Bytes(Reader):
    def __init__(self, data: bytes, short_at: int | None = None) -> None:
        self.data, self.short_at = data, short_at

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, offset: int, length: int) -> bytes:
        if self.short_at is not None and offset >= self.short_at:
            length -= 1
        return self.data[offset : offset + length]


@pytest.mark.parametrize(("start", "end"), [(0, None), (0, 0), (7, 1000), (999, 5000), (5000, 5000)])
def test_checksum_range_is_the_checksum_of_those_bytes(start, end):
    data = bytes(range(256)) * 20
    stop = len(data) if end is None else end
    for algorithm in ("md5", "crc32c", "adler32"):
        got = checksum_range(_Bytes(data), algorithm, start, end, block_size=333)
        assert got == digest_bytes(algorithm, data[start:stop])


def test_checksum_range_refuses_a_range_outside_the_object_and_a_short_read():
    with pytest.raises(ValueError, match="not within"):
        checksum_range(_Bytes(b"abc"), "md5", 2, 9)
    with pytest.raises(ShortRead):
        checksum_range(_Bytes(b"x" * 100, short_at=40), "md5", block_size=16)


# -- what the Driver base does once for every driver ------------------------------------------


class _Minimal(Driver):
    name = "minimal"
    options = {"depth": int_option("how deep", default=3), "label": str_option("a label")}

    def capabilities(self) -> Capabilities:
        return Capabilities()

    def stat(self, path: str) -> ObjectInfo:
        raise NotImplementedError

    def open_write(self, path: str, size: int, resume: RangeSet | None = None) -> Writer:
        raise NotImplementedError

    def open_read(self, path: str) -> Reader:
        raise NotImplementedError


class _Lists(_Minimal):
    def list(self, path: str) -> Iterator[ObjectInfo]:
        return iter(())

    def remove(self, path: str) -> None:
        pass


def test_settings_hold_every_declared_option_at_its_default_unless_given():
    assert _Minimal().settings == {"depth": 3, "label": None}
    assert _Minimal(options={"depth": 9}).settings == {"depth": 9, "label": None}


def test_the_namespace_is_what_the_driver_implements():
    assert _Minimal().namespace() == frozenset()
    assert _Lists().namespace() == {"list", "remove"}
