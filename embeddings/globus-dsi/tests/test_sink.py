"""The C data path (blocks written by C into the descriptor the posix writer lends) through
the real server, with a raw MODE E client that can send what globus-url-copy never would."""

from __future__ import annotations

import os

import pytest
from transfercore_globus_dsi.testing import Control

pytestmark = pytest.mark.globus

BLOCK = 64 * 1024


def _blocks(payload: bytes, order: list[int]) -> list[tuple[int, bytes]]:
    return [(i * BLOCK, payload[i * BLOCK : (i + 1) * BLOCK]) for i in order]


def test_out_of_order_blocks_written_by_c_identical(served, root):
    payload = os.urandom(20 * BLOCK + 123)
    order = list(range(21))[::-1]
    c = Control(served.port)
    try:
        c.login()
        replies = c.stor_mode_e("/c.bin", _blocks(payload, order), alloc=len(payload))
    finally:
        c.close()
    assert replies[-1][0] == 226, replies
    assert (root / "c.bin").read_bytes() == payload
    assert "pwrite in C" in served.dsi_log()


@pytest.mark.parametrize("case", ["twice", "past the size"])
def test_bad_blocks_fail_the_upload_and_publish_nothing(served, root, case):
    payload = os.urandom(8 * BLOCK)
    blocks = _blocks(payload, list(range(8)))
    if case == "twice":
        blocks.insert(4, (2 * BLOCK + 100, payload[2 * BLOCK + 100 : 3 * BLOCK]))
        expect = "arrived twice"
    else:
        blocks.append((8 * BLOCK, b"x" * 100))
        expect = "outside the announced upload"
    c = Control(served.port)
    try:
        c.login()
        replies = c.stor_mode_e("/bad.bin", blocks, alloc=len(payload))
    finally:
        c.close()
    assert replies[-1][0] >= 400, replies
    assert expect in replies[-1][1] + served.dsi_log(), replies
    assert not (root / "bad.bin").exists()
