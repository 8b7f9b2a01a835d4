"""The part layout, without a server."""

from __future__ import annotations

import pytest
from transfercore_s3.layout import MAX_DATA_PARTS, Layout, MiB, infer_part_size

from transfercore import RangeSet
from transfercore.errors import OptionError


def test_parts_cover_the_object_once() -> None:
    layout = Layout.choose(21 * MiB + 5, 8 * MiB)
    assert layout.count == 3
    assert [layout.span(n) for n in (1, 2, 3)] == [(0, 8 * MiB), (8 * MiB, 16 * MiB), (16 * MiB, 21 * MiB + 5)]
    assert layout.first(8 * MiB - 1) == 1 and layout.first(8 * MiB) == 2
    assert layout.ranges([1, 3]) == RangeSet.of((0, 8 * MiB), (16 * MiB, 21 * MiB + 5))
    assert Layout.choose(0, 8 * MiB).count == 1


def test_part_size_grows_so_9999_parts_hold_the_object() -> None:
    size = 5 * 1024 * 1024 * MiB  # 5 TiB, S3's largest object
    layout = Layout.choose(size, 8 * MiB)
    assert layout.part_size % MiB == 0 and layout.count <= MAX_DATA_PARTS
    assert Layout.choose(100 * 1024 * MiB, 8 * MiB).part_size == 11 * MiB  # 100 GiB: 9,310 parts
    with pytest.raises(OptionError, match="5 TiB"):
        Layout.choose(size + 1, 8 * MiB)


@pytest.mark.parametrize("part", [0, 5 * MiB - 1])
def test_part_size_below_5mib_is_refused(part: int) -> None:
    with pytest.raises(OptionError, match="below S3's minimum of 5 MiB"):
        Layout.choose(10, part)


def test_the_record_names_size_and_part_size() -> None:
    assert Layout(10, 5 * MiB).record() != Layout(11, 5 * MiB).record() != Layout(10, 6 * MiB).record()


def test_part_size_inferred_from_listed_parts() -> None:
    assert infer_part_size({1: 6 * MiB, 3: 6 * MiB, 4: 100}, 5 * MiB) == 6 * MiB
    assert infer_part_size({2: 100}, 5 * MiB) == 5 * MiB  # only a short last part: the configured size
    assert infer_part_size({1: 6 * MiB, 2: 7 * MiB, 3: 1}, 5 * MiB) is None  # no single part size
    assert infer_part_size({1: 6 * MiB, 2: 7 * MiB}, 5 * MiB) is None  # a last part larger than the others
