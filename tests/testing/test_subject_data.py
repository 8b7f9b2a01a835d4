"""The kit's test data: the same bytes in every process, at any size a driver asks for."""

from __future__ import annotations

import random

from transfercore.testing.subject import pattern, random_bytes


def test_a_small_object_is_one_draw() -> None:
    assert random_bytes(random.Random(3), 1000) == random.Random(3).randbytes(1000)


def test_an_object_past_256_mib_is_drawn_in_pieces_and_repeats() -> None:
    size = 256 * 1024 * 1024 + 5  # randbytes alone overflows here
    first = pattern(5, size)
    assert len(first) == size
    assert first == pattern(5, size)
    assert first != pattern(6, size)
