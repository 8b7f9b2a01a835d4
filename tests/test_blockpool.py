"""The block pool: buffers given away with their bytes come back once, and serve later blocks."""

from __future__ import annotations

import ctypes
import mmap

import pytest

from transfercore.blockpool import MIN_BLOCK, BlockPool


def address(view: memoryview) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(view))


def test_a_buffer_is_page_aligned_writable_and_of_the_size_class_asked_for() -> None:
    pool = BlockPool(keep=1 << 20)
    for n, size in ((1, MIN_BLOCK), (MIN_BLOCK, MIN_BLOCK), (MIN_BLOCK + 1, 2 * MIN_BLOCK), (256 * 1024, 256 * 1024)):
        buf, _ = pool.take(n)
        assert len(buf) == size == pool.size_for(n)
        assert address(buf) % mmap.PAGESIZE == 0
        buf[:n] = b"x" * n
        assert bytes(buf[:n]) == b"x" * n


def test_a_released_buffer_serves_the_next_block_of_its_size_and_no_other() -> None:
    pool = BlockPool(keep=1 << 20)
    buf, release = pool.take(100_000)
    other, _ = pool.take(100_000)
    where = address(buf)
    release()
    assert pool.free_bytes == len(buf)
    small, _ = pool.take(1000)  # another size class: a new buffer
    assert address(small) != where
    again, _ = pool.take(100_000)
    assert address(again) == where
    assert address(other) != where
    assert pool.made == 3
    assert pool.free_bytes == 0


def test_a_second_release_of_one_buffer_does_not_hand_it_out_twice() -> None:
    pool = BlockPool(keep=1 << 20)
    buf, release = pool.take(MIN_BLOCK)
    release()
    release()
    first, _ = pool.take(MIN_BLOCK)
    second, _ = pool.take(MIN_BLOCK)
    assert address(first) == address(buf)
    assert address(second) != address(first)


def test_the_pool_keeps_no_more_free_buffers_than_it_may() -> None:
    pool = BlockPool(keep=3 * MIN_BLOCK)
    taken = [pool.take(MIN_BLOCK) for _ in range(5)]
    for _, release in taken:
        release()
    assert pool.free_bytes == 3 * MIN_BLOCK
    kept = {address(pool.take(MIN_BLOCK)[0]) for _ in range(3)}
    assert kept <= {address(buf) for buf, _ in taken}
    assert pool.take(MIN_BLOCK)[0] is not None and pool.made == 6


def test_a_negative_keep_is_refused() -> None:
    with pytest.raises(ValueError, match="keep"):
        BlockPool(keep=-1)
