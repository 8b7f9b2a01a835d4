"""Restarts through the real server: a destination session SIGKILLed mid-transfer resumes."""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest
from transfercore_globus_dsi.testing import Control, guc

from transfercore.ranges import RangeSet

pytestmark = pytest.mark.globus


def test_third_party_sigkill_after_two_111_resumes_with_rest(dsi_server, real_server, public_dir, tmp_path):
    """The real server with its own file storage is the source; the DSI server the
    destination.  Its session is SIGKILLed after two 111 markers; globus-url-copy -rst
    restarts with REST, the driver accepts the marker, and the file ends identical.

    The mock driver keeps its durable state in a directory (it survives the kill) and
    sleeps in every write, so the transfer outlasts two of the server's 5 s marker periods.
    """
    payload = os.urandom(12 * 1024 * 1024)
    (public_dir / "r.bin").write_bytes(payload)
    (public_dir / "r.bin").chmod(0o644)
    state = tmp_path / "state"
    state.mkdir()
    dest = dsi_server(f"mock://st/?dir={state}&slow=0.25", dsi_options=["durable_interval=0.2"])
    cli = subprocess.Popen(
        ["globus-url-copy", "-dbg", "-vb", "-fast", "-p", "4", "-rst", "-rst-retries", "5",
         "-rst-interval", "1", f"ftp://127.0.0.1:{real_server}{public_dir}/r.bin", dest.ftp("/r.bin")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    killed_after: list[RangeSet] = []
    marks: list[RangeSet] = []
    deadline = time.monotonic() + 100
    try:
        assert cli.stdout is not None
        for line in cli.stdout:
            lines.append(line)
            assert time.monotonic() < deadline, "transfer took too long"
            m = re.match(r"^111 Range Marker (\S+)", line)
            if m:
                marks.append(RangeSet.parse(m.group(1)))
                if len(marks) == 2 and not killed_after:
                    assert dest.kill_sessions() >= 1
                    killed_after.append(marks[0] | marks[1])
        assert cli.wait(30) == 0, "".join(lines[-60:])
    finally:
        if cli.poll() is None:
            cli.kill()
    out = "".join(lines)
    assert killed_after, "fewer than two 111 markers arrived:\n" + out[-3000:]
    rest = [line for line in lines if line.startswith("REST ")]
    assert rest, "the client never restarted with REST"
    # the restart asked only for what the markers did not name, and was accepted (no 553)
    assert not re.search(r"^553[ -]", out, re.MULTILINE), out[-3000:]
    back = tmp_path / "back.bin"
    guc(dest.ftp("/r.bin"), f"file://{back}")
    assert back.read_bytes() == payload
    assert "resume " in dest.dsi_log() and "resume none" in dest.dsi_log()
    assert re.search(r"resume \d+-\d+", dest.dsi_log()), dest.dsi_log()


def test_stream_rest_after_sigkill_resumes_identical(served, root):
    """A MODE S upload is killed after the storage made part of it durable; REST n for
    n inside the durable marker is accepted and the file ends identical; REST past it
    gets 553 with the driver's reason."""
    payload = os.urandom(3 * 1024 * 1024)
    c = Control(served.port)
    c.login()
    data = c.pasv()
    assert c.cmd(f"ALLO {len(payload)}")[0] in (200, 202)
    c.sock.sendall(b"STOR /s.bin\r\n")
    assert c.reply()[0] == 150
    half = len(payload) // 2
    data.sendall(payload[:half])
    # the driver's own record of the partial upload grows as durable() runs
    from transfercore_globus_dsi.testing import wait_for

    from transfercore.registry import open_location

    driver = open_location(f"posix://{root}").driver
    wait_for(lambda: driver.partial(f"{root}/s.bin").contains(RangeSet.span(0, half)), 15,
             "the first half to become durable")
    served.kill_sessions()
    data.close()
    c.sock.close()
    # past what is durable: refused, nothing accepted
    c = Control(served.port)
    c.login()
    replies = c.stor("/s.bin", payload[half + 4096 :], alloc=len(payload), rest=str(half + 4096))
    assert replies[-1][0] == 553, replies
    c.close()
    c = Control(served.port)
    c.login()
    replies = c.stor("/s.bin", payload[4096:], alloc=len(payload), rest="4096")
    assert replies[-1][0] == 226, replies
    c.close()
    assert (root / "s.bin").read_bytes() == payload


def test_third_party_from_the_dsi_to_the_built_in_storage(served, root, real_server, public_dir):
    payload = os.urandom(5 * 1024 * 1024 + 99)
    (root / "out.bin").write_bytes(payload)
    guc("-fast", "-p", "4", served.ftp("/out.bin"), f"ftp://127.0.0.1:{real_server}{public_dir}/out.bin")
    assert (public_dir / "out.bin").read_bytes() == payload


def test_unsupported_command_names_itself(served, root):
    (root / "f").write_bytes(b"x")
    c = Control(served.port)
    try:
        c.login()
        code, text = c.cmd("SITE CHGRP root /f")
        assert code >= 500 and "SITE CHGRP" in text, text
    finally:
        c.close()
