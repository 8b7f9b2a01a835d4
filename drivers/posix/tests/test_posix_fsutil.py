import os

import pytest
from transfercore_posix import fsutil


def test_pwrite_all_retries_short_writes(tmp_path, monkeypatch):
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    real = os.pwrite
    calls = []

    def short(fd_, data, offset):
        calls.append(offset)
        return real(fd_, bytes(data)[:3], offset)

    monkeypatch.setattr(os, "pwrite", short)
    try:
        fsutil.pwrite_all(fd, memoryview(b"0123456789"), 5)
    finally:
        monkeypatch.undo()
        os.close(fd)
    assert path.read_bytes() == b"\0" * 5 + b"0123456789"
    assert calls == [5, 8, 11, 14]


def test_pwrite_all_refuses_to_loop_on_zero(tmp_path, monkeypatch):
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    monkeypatch.setattr(os, "pwrite", lambda *a: 0)
    try:
        with pytest.raises(OSError):
            fsutil.pwrite_all(fd, memoryview(b"abc"), 0)
    finally:
        monkeypatch.undo()
        os.close(fd)


def test_remove_quietly(tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    assert fsutil.remove_quietly(str(tmp_path / "f")) is True
    assert fsutil.remove_quietly(str(tmp_path / "f")) is False
