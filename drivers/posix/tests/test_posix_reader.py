import os

import pytest
from posix_support import payload

from transfercore.errors import RangeSyntaxError, StorageError, WriterClosed


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
            with pytest.raises(RangeSyntaxError):
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
