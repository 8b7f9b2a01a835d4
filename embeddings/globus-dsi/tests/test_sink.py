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


def test_small_uploads_read_into_buffers_of_their_size_arrive_whole(served, root):
    """Uploads smaller than the server's block size, whose reads get buffers of their own
    size: out-of-order MODE E blocks, one block of the whole file, MODE S in one piece, one byte."""
    payload = os.urandom(5000)
    small = 1000
    c = Control(served.port)
    try:
        c.login()
        order = [4, 0, 3, 1, 2]
        replies = c.stor_mode_e("/a.bin", [(i * small, payload[i * small : (i + 1) * small]) for i in order],
                                alloc=len(payload))
        assert replies[-1][0] == 226, replies
        replies = c.stor_mode_e("/b.bin", [(0, payload)], alloc=len(payload))
        assert replies[-1][0] == 226, replies
        assert c.cmd("MODE S")[0] == 200
        assert c.stor("/c.bin", payload, alloc=len(payload))[-1][0] == 226
        assert c.stor("/d.bin", b"z", alloc=1)[-1][0] == 226
    finally:
        c.close()
    for name in ("a.bin", "b.bin", "c.bin"):
        assert (root / name).read_bytes() == payload, name
    assert (root / "d.bin").read_bytes() == b"z"
    assert not [p.name for p in root.iterdir() if p.name.startswith(".")]
