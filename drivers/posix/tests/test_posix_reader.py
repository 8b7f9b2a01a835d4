import os

import pytest
from posix_support import payload, resident_pages

from transfercore.errors import InvalidRead, ReaderClosed, ShortRead


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
    with pytest.raises(ShortRead, match="changed while being read"):
        reader.read(0, 10_000)
    reader.close()


def test_read_after_close_is_refused(driver, stored):
    reader = driver.open_read(str(stored))
    reader.close()
    reader.close()  # idempotent
    with pytest.raises(ReaderClosed):
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
    with pytest.raises(ReaderClosed):
        reader.readinto(0, bytearray(1))


def test_readinto_of_a_file_truncated_under_the_reader_is_an_error(driver, stored):
    reader = driver.open_read(str(stored))
    os.truncate(stored, 100)
    buffer = bytearray(10_000)
    with pytest.raises(ShortRead, match="changed while being read"):
        reader.readinto(0, buffer)
    reader.close()


# -- the page cache (driver option keep_cache) ---------------------------------------


def _cold_file(tmp_path, size):
    path = tmp_path / "cold.bin"
    data = os.urandom(size)
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    assert resident_pages(str(path)) == 0
    return str(path), data


def _read_all(url_options, path, size):
    from transfercore.engine.buffers import aligned_buffer
    from transfercore.registry import open_location

    endpoint = open_location(f"posix://{path}{url_options}")
    buffer = aligned_buffer(size)
    with endpoint.driver.open_read(endpoint.path) as reader:
        reader.readinto(0, buffer)
    return bytes(buffer)


def test_bytes_fetched_from_the_device_leave_the_cache_after_reading(tmp_path):
    size = 2 << 20
    path, data = _cold_file(tmp_path, size)
    assert _read_all("", path, size) == data
    assert resident_pages(path) == 0


def test_keep_cache_leaves_what_was_read_cached(tmp_path):
    import mmap

    size = 2 << 20
    path, data = _cold_file(tmp_path, size)
    assert _read_all("?keep_cache=true", path, size) == data
    assert resident_pages(path) == size // mmap.PAGESIZE


def test_a_file_already_cached_stays_cached(tmp_path):
    import mmap

    size = 2 << 20
    path, data = _cold_file(tmp_path, size)
    with open(path, "rb") as handle:  # another program keeps the file hot
        assert handle.read() == data
    assert resident_pages(path) == size // mmap.PAGESIZE
    assert _read_all("", path, size) == data
    # A reader that dropped the file's pages would leave none; the kernel itself may evict a
    # page between the check above and the reader's look (one of 512 went once in a full run),
    # and the reader rightly drops a page it had to fetch.
    assert resident_pages(path) >= size // mmap.PAGESIZE - 8


def test_without_a_way_to_tell_cached_pages_nothing_is_dropped(tmp_path, monkeypatch):
    import mmap

    from transfercore_posix import fsutil

    size = 1 << 20
    path, data = _cold_file(tmp_path, size)
    monkeypatch.delattr(fsutil.os, "RWF_NOWAIT")
    assert _read_all("", path, size) == data
    assert resident_pages(path) == size // mmap.PAGESIZE
