"""A client whose data stall mid-upload still gets a ``111`` for what is durable.

``durable()`` runs in the DSI's own thread, which may not call Globus; a Globus
timer hands its ranges to the server, so the server's next restart-marker tick
names them even though no data callback runs (the server's built-in storage
sends one after about 5 s of stall too).  A raw MODE E client, so the pause is
exact: half the file, then nothing until a ``111`` arrives.
"""

from __future__ import annotations

import os
import struct
import time

import pytest
from transfercore_globus_dsi.testing import Control

from transfercore.ranges import RangeSet
from transfercore.registry import open_location

pytestmark = pytest.mark.globus

EOF_EOD = 0x40 | 0x08
#: the server's default restart-marker period is 5 s; the DSI's flush and timer add at most 1 s
MARKER_WITHIN = 9.0


def eblock(desc: int, payload: bytes, offset: int) -> bytes:
    """A MODE E block: descriptor, byte count, offset (for EOF, the offset is the EOD count)."""
    return struct.pack(">BQQ", desc, len(payload), offset) + payload


# the timer runs on the event thread (-threads 0, Globus without locks) or in a pool (-threads N)
@pytest.mark.parametrize("server_args", [[], ["-threads", "4"]], ids=["unthreaded", "threads4"])
def test_a_stalled_mode_e_upload_gets_a_111_for_its_durable_bytes(dsi_server, root, server_args):
    server = dsi_server(f"posix://{root}", dsi_options=["durable_interval=0.5"], server_args=server_args)
    payload = os.urandom(4 * 1024 * 1024)
    half = len(payload) // 2
    c = Control(server.port)
    c.login()
    assert c.cmd("MODE E")[0] == 200
    assert c.cmd(f"ALLO {len(payload)}")[0] in (200, 202)
    data = c.pasv()
    try:
        c.sock.sendall(b"STOR /stall.bin\r\n")
        code, text = c.reply()
        assert code == 150, text
        data.sendall(eblock(0, payload[:half], 0))
        sent = time.monotonic()
        # the stall: no more data until the server sends a restart marker
        marker = None
        while marker is None:
            left = sent + MARKER_WITHIN - time.monotonic()
            assert left > 0, f"no 111 within {MARKER_WITHIN:.0f} s of the data stalling"
            c.sock.settimeout(left)
            try:
                code, text = c.reply()
            except TimeoutError:
                pytest.fail(f"no 111 within {MARKER_WITHIN:.0f} s of the data stalling")
            assert code < 200, f"the upload ended during the stall: {text}"
            if code == 111:
                marker = RangeSet.parse(text.split("Range Marker", 1)[1].strip())
        c.sock.settimeout(30)
        # it names only bytes sent, and the storage's own record holds them durable
        assert marker and RangeSet.span(0, half).contains(marker), marker
        driver = open_location(f"posix://{root}").driver
        assert driver.partial(f"{root}/stall.bin").contains(marker)
        # the rest, then the end: the upload completes as if nothing had happened
        data.sendall(eblock(0, payload[half:], half) + eblock(EOF_EOD, b"", 1))
    finally:
        data.close()
    replies = c.until_final()
    assert replies[-1][0] == 226, replies
    c.close()
    assert (root / "stall.bin").read_bytes() == payload
