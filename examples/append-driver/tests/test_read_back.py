import pytest

from transfercore.errors import InvalidRead, InvalidWrite, WriterClosed
from transfercore.registry import open_location


def test_read_durable_returns_the_partial_files_bytes_inside_the_marker(tmp_path):
    driver = open_location(f"append://{tmp_path}").driver
    path = f"{tmp_path}/obj"
    data = bytes(range(256)) * 4
    writer = driver.open_write(path, len(data))
    writer.write(0, data[:600])
    with pytest.raises(InvalidWrite, match="durable marker"):
        writer.read_durable(0, bytearray(10))
    writer.durable()
    writer.write(600, data[600:900])
    back = bytearray(600)
    writer.read_durable(0, back)
    assert back == data[:600]
    with open(tmp_path / ".obj.partial", "r+b") as handle:  # the storage changes a stored byte
        handle.seek(7)
        handle.write(b"!")
    writer.read_durable(0, back)
    assert back[7:8] == b"!"  # what is stored, not what was sent
    with pytest.raises(InvalidWrite, match="durable marker"):
        writer.read_durable(590, bytearray(20))
    with pytest.raises(InvalidRead):
        writer.read_durable(1000, bytearray(100))
    writer.write(900, data[900:])
    writer.durable()
    writer.complete()
    with pytest.raises(WriterClosed):
        writer.read_durable(0, bytearray(1))
