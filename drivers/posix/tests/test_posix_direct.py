from __future__ import annotations

import errno
import fcntl
import mmap
import os

import pytest
from posix_support import refuse_o_direct
from transfercore_posix import direct
from transfercore_posix.direct import DirectFile, address_of, alignment_of, open_direct

from transfercore.engine.buffers import aligned_buffer
from transfercore.errors import StorageError


@pytest.fixture
def partial(tmp_path):
    path = tmp_path / "p.bin"
    path.write_bytes(b"")
    return str(path)


def test_alignment_is_a_power_of_two_of_at_least_a_page(partial):
    fd = os.open(partial, os.O_RDONLY)
    try:
        align = alignment_of(fd)
    finally:
        os.close(fd)
    assert align >= mmap.PAGESIZE
    assert align & (align - 1) == 0
    assert align % os.stat(partial).st_blksize == 0


def test_address_of_a_page_aligned_buffer_and_of_its_slices():
    view = aligned_buffer(3 * mmap.PAGESIZE)
    base = address_of(view)
    assert base is not None and base % mmap.PAGESIZE == 0
    assert address_of(view[5:]) == base + 5
    assert address_of(memoryview(b"read-only bytes")) is None
    assert address_of(view[:0]) is None


def test_aligned_length_takes_whole_aligned_blocks_of_large_requests_only():
    fd = os.open("/", os.O_RDONLY)  # never used for I/O here
    m = direct.MIN_DIRECT
    try:
        d = DirectFile(fd, 4096, strict=False)
        view = aligned_buffer(m + 3 * 4096 + 5)
        assert d.aligned_length(0, view) == m + 3 * 4096
        assert d.aligned_length(8192, view[:m]) == m
        assert d.aligned_length(100, view) == 0  # offset not aligned
        assert d.aligned_length(0, view[1:]) == 0  # address not aligned
        assert d.aligned_length(0, view[: m - 4096]) == 0  # too small to gain from direct
        assert d.aligned_length(0, memoryview(bytes(m))) == 0  # address unknown
        d.usable = False
        assert d.aligned_length(0, view) == 0
    finally:
        os.close(fd)


def test_open_direct_gives_an_o_direct_descriptor(partial):
    fd = open_direct(partial, "auto")
    assert fd is not None
    try:
        assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT
        buf = aligned_buffer(4096)
        buf[:] = b"x" * 4096
        assert os.pwrite(fd, buf, 0) == 4096
    finally:
        os.close(fd)
    with open(partial, "rb") as handle:
        assert handle.read() == b"x" * 4096


def test_open_direct_off_opens_nothing(partial):
    assert open_direct(partial, "off") is None


def test_a_refused_o_direct_falls_back_in_auto_and_is_an_error_in_on(partial, monkeypatch):
    refuse_o_direct(monkeypatch)
    assert open_direct(partial, "auto") is None
    with pytest.raises(StorageError, match="refuses O_DIRECT") as info:
        open_direct(partial, "on")
    assert "direct=auto" in info.value.hint
    assert info.value.errno == errno.EINVAL


def test_other_open_errors_are_reported(tmp_path):
    with pytest.raises(StorageError, match="direct writes"):
        open_direct(str(tmp_path / "missing"), "auto")


def test_refused_request_disables_direct_in_auto_and_raises_in_on():
    fd = os.open("/", os.O_RDONLY)
    try:
        lenient = DirectFile(fd, 4096, strict=False)
        lenient.refused(OSError(errno.EINVAL, "Invalid argument"), "x")
        assert lenient.usable is False
        strict = DirectFile(fd, 4096, strict=True)
        with pytest.raises(StorageError, match="refused an O_DIRECT request"):
            strict.refused(OSError(errno.EINVAL, "Invalid argument"), "x")
    finally:
        os.close(fd)
