import ctypes
import mmap

from transfercore.engine.buffers import aligned_buffer


def _address(view: memoryview) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(view))


def test_buffers_are_page_aligned_zeroed_and_writable():
    for size in (1, 4096, 3 * 1024 * 1024 + 5):
        view = aligned_buffer(size)
        assert view.nbytes == size and not view.readonly
        assert _address(view) % mmap.PAGESIZE == 0
        head = min(16, size)
        assert view[:head] == bytes(head) and view[-1] == 0
        view[-1] = 7
        assert view[-1] == 7


def test_a_zero_size_request_still_gives_a_usable_buffer():
    view = aligned_buffer(0)
    assert view.nbytes == 1 and view[:0] == b""
