import os

import pytest
from posix_support import payload

from transfercore.errors import InvalidRead, StorageError, WriterClosed


@pytest.fixture
def stored(tmp_path):
    path = tmp_path / "r.bin"
    path.write_bytes(payload(10_000))
    return path


def test_reads_return_exactly_the_requested_bytes(driver, stored):
    data = payload(10_000)
    with driver.open_read(str(stored)) as reader:
        assert reader.size == 10_000
        assert reader.read(0, 10) == data[:10]
        assert reader.read(9_990, 100) == data[9_990:]
        assert reader.read(10_000, 5) == b""
        assert reader.read(123, 0) == b""


def test_bad_offsets_are_refused(driver, stored):
    with driver.open_read(str(stored)) as reader:
        for offset, length in [(-1, 5), (10_001, 1), (0, -1)]:
            with pytest.raises(InvalidRead):
                reader.read(offset, length)


def test_a_file_truncated_under_the_reader_is_an_error_not_a_short_read(driver, stored):
    reader = driver.open_read(str(stored))
    os.truncate(stored, 100)
    with pytest.raises(StorageError, match="truncated"):
        reader.read(0, 10_000)
    reader.close()


def test_read_after_close_is_refused(driver, stored):
    reader = driver.open_read(str(stored))
    reader.close()
    reader.close()  # idempotent
    with pytest.raises(WriterClosed):
        reader.read(0, 1)


def test_readinto_fills_the_buffer_with_the_bytes_at_the_offset(driver, stored):
    data = payload(10_000)
    with driver.open_read(str(stored)) as reader:
        buffer = bytearray(1000)
        reader.readinto(9_000, buffer)
        assert buffer == data[9_000:]
        view = memoryview(bytearray(300))
        reader.readinto(17, view[100:200])
        assert view[100:200] == data[17:117] and view[:100] == bytes(100)


def test_readinto_past_the_end_or_after_close_is_refused(driver, stored):
    reader = driver.open_read(str(stored))
    with pytest.raises(InvalidRead, match="past its size"):
        reader.readinto(9_990, bytearray(11))
    with pytest.raises(InvalidRead):
        reader.readinto(-1, bytearray(1))
    reader.close()
    with pytest.raises(WriterClosed):
        reader.readinto(0, bytearray(1))


def test_readinto_of_a_file_truncated_under_the_reader_is_an_error(driver, stored):
    reader = driver.open_read(str(stored))
    os.truncate(stored, 100)
    buffer = bytearray(10_000)
    with pytest.raises(StorageError, match="truncated"):
        reader.readinto(0, buffer)
    reader.close()
