"""Blocks written by the caller through the descriptor a PosixWriter lends (the GridFTP DSI's C path)."""

from __future__ import annotations

import os

import pytest

from transfercore.errors import InvalidWrite
from transfercore.ranges import RangeSet
from transfercore.registry import open_location


def test_lent_writes_count_once_noted_and_complete(tmp_path):
    driver = open_location(f"posix://{tmp_path}").driver
    payload = os.urandom(3 * 65536)
    w = driver.open_write(f"{tmp_path}/o.bin", len(payload), None)
    fd = w.lend_fd()
    assert isinstance(fd, int)
    os.pwrite(fd, payload[65536:], 65536)
    # not noted yet: durable() names nothing, complete() refuses the missing bytes
    assert w.durable() == RangeSet()
    w.note_written(RangeSet.span(65536, len(payload)))
    assert w.durable() == RangeSet.span(65536, len(payload))
    assert driver.partial(f"{tmp_path}/o.bin") == RangeSet.span(65536, len(payload))
    with pytest.raises(InvalidWrite):
        w.note_written(RangeSet.span(65536, 2 * 65536))  # already written
    with pytest.raises(InvalidWrite):
        w.complete()  # 0-65536 never written
    os.pwrite(fd, payload[:65536], 0)
    w.note_written(RangeSet.span(0, 65536))
    w.complete()
    assert (tmp_path / "o.bin").read_bytes() == payload
