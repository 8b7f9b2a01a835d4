"""Uploads without ALLO through the real server: a durable spool, honest 111 markers, REST."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time

import pytest
from transfercore_globus_dsi.testing import Control, wait_for

from transfercore.ranges import RangeSet

pytestmark = pytest.mark.globus

CHUNK = 256 * 1024


def test_no_allo_upload_gets_111_is_killed_after_two_and_resumes_with_rest(dsi_server, root, tmp_path):
    """globus-url-copy from a pipe (a source it cannot size: MODE E -p 4, no ALLO) gets 111
    markers from the DSI's durable spool; the session is SIGKILLed after two; a REST naming
    what the markers named is accepted (the spool's record backs it) and only the rest is
    sent; the file ends identical, and the spool is gone."""
    payload = os.urandom(40 * 1024 * 1024)
    served = dsi_server(f"posix://{root}", dsi_options=["durable_interval=0.2"])
    cli = subprocess.Popen(
        ["globus-url-copy", "-dbg", "-vb", "-fast", "-p", "4", "file:///dev/stdin", served.ftp("/n.bin")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    lines: list[str] = []
    marks: list[RangeSet] = []
    two = threading.Event()

    def read() -> None:
        assert cli.stdout is not None
        for raw in cli.stdout:
            line = raw.decode(errors="replace")
            lines.append(line)
            m = re.match(r"^111 Range Marker (\S+)", line)
            if m:
                marks.append(RangeSet.parse(m.group(1)))
                if len(marks) == 2:
                    two.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    killed = 0
    try:
        assert cli.stdin is not None
        deadline = time.monotonic() + 60
        pos = 0
        # a trickle (about 2.5 MiB/s), so the upload outlasts two of the server's 5 s marker periods
        while not two.is_set() and pos < len(payload) - CHUNK:
            assert time.monotonic() < deadline, "no two 111 markers in time:\n" + "".join(lines[-40:])
            cli.stdin.write(payload[pos : pos + CHUNK])
            cli.stdin.flush()
            pos += CHUNK
            two.wait(0.1)
        assert two.is_set(), "the upload ran out of data before two 111 markers:\n" + "".join(lines[-40:])
        killed = served.kill_sessions()
    finally:
        cli.kill()
        cli.wait(30)
        reader.join(10)
    assert killed >= 1
    out = "".join(lines)
    assert not re.search(r"^ALLO ", out, re.MULTILINE), "the client announced a size"
    held = marks[0] | marks[1]
    assert held.end() <= pos
    assert not (root / "n.bin").exists(), "nothing is published before the whole upload is in"
    # the spool and its record survived the kill, hidden beside the destination
    assert any(p.name.startswith(".tc-spool-") for p in root.iterdir())
    assert "durable spool" in served.dsi_log()

    # a REST past anything the client sent is refused: the spool's record cannot back it
    # (bytes between the markers and the kill may be durable too: the markers lag)
    c = Control(served.port)
    c.login()
    too_far = RangeSet.span(0, pos + 4 * CHUNK)
    replies = c.stor_mode_e("/n.bin", [], rest=str(too_far))
    assert replies[-1][0] == 553, replies
    c.close()

    # the resume: REST with the markers, then only the bytes they do not name
    missing = held.complement(len(payload))
    blocks = [(off, payload[off : min(off + CHUNK, r.end)]) for r in missing for off in range(r.start, r.end, CHUNK)]
    c = Control(served.port)
    c.login()
    replies = c.stor_mode_e("/n.bin", blocks, rest=str(held))
    c.close()
    assert replies[-1][0] == 226, replies
    assert (root / "n.bin").read_bytes() == payload
    wait_for(lambda: not any(p.name.startswith(".tc-spool-") for p in root.iterdir()), 10, "the spool to go")
    assert re.search(r"resume \d+-\d+.*durable spool", served.dsi_log()), served.dsi_log()


def test_no_allo_upload_past_max_spool_fails_and_says_send_allo(dsi_server, root):
    served = dsi_server(f"posix://{root}", dsi_options=["max_spool=1MiB"])
    c = Control(served.port)
    try:
        c.login()
        replies = c.stor_mode_e("/big.bin", [(off, os.urandom(CHUNK)) for off in range(0, 2 << 20, CHUNK)])
    finally:
        c.close()
    assert replies[-1][0] >= 400 and "ALLO" in replies[-1][1], replies
    assert not (root / "big.bin").exists()
