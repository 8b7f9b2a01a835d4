import pytest
from mock_support import open_mock

from transfercore.errors import InvalidRead, ReaderClosed


@pytest.fixture(params=["", "?spill=true"])
def stored(request):
    driver, path = open_mock("mock://r/obj" + request.param)
    w = driver.open_write(path, 10)
    w.write(0, b"0123456789")
    w.complete()
    return driver, path


def test_reads(stored):
    driver, path = stored
    with driver.open_read(path) as reader:
        assert reader.size == 10
        assert reader.read(2, 3) == b"234"
        assert reader.read(8, 100) == b"89"
        assert reader.read(10, 1) == b""
        for offset, length in [(-1, 1), (11, 1), (0, -1)]:
            with pytest.raises(InvalidRead):
                reader.read(offset, length)


def test_a_reader_keeps_its_view_when_the_object_is_replaced(stored):
    driver, path = stored
    reader = driver.open_read(path)
    w = driver.open_write(path, 3)
    w.write(0, b"new")
    w.complete()
    assert reader.read(0, 10) == b"0123456789"
    reader.close()
    with pytest.raises(ReaderClosed):
        reader.read(0, 1)
