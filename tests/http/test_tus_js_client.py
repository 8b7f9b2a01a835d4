"""tus-js-client (under node, from npm) against the real server, which is SIGKILLed and restarted mid-upload."""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import time
from pathlib import Path

import pytest

MiB = 1 << 20
NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture
def node() -> str:
    exe = shutil.which("node")
    if exe is None or not (NODE_DIR / "node_modules" / "tus-js-client").is_dir():
        pytest.fail(f"this test needs node and tus-js-client: run 'npm ci --prefix {NODE_DIR}' (CI does)")
    return exe


def lines(proc: subprocess.Popen[str], timeout: float):
    """The client's output lines as they come, for at most ``timeout`` seconds."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(deadline - time.monotonic()):
            line = proc.stdout.readline()
            if not line:
                return
            yield line.strip()
    raise AssertionError("the tus-js-client upload did not end in time")


def test_tus_js_client_resumes_across_a_server_kill(tmp_path: Path, serve_http, node: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = serve_http("--root", str(root))
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(32 * MiB + 11))
    proc = subprocess.Popen([node, str(NODE_DIR / "upload.mjs"), f"{server.base}/files/", str(src), "js.bin",
                             str(MiB)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    acked: list[int] = []
    killed = False
    try:
        for line in lines(proc, 60):
            word, _, value = line.partition(" ")
            if word == "ACK":
                acked.append(int(value))
                if not killed and acked[-1] >= 8 * MiB:
                    server.kill()  # mid-upload: the client's next chunk fails, it retries
                    killed = True
                    server.start()
            elif word == "ERROR":
                raise AssertionError(line)
            elif word == "DONE":
                break
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert killed and acked == sorted(acked) and acked[-1] == src.stat().st_size
    assert (root / "js.bin").read_bytes() == src.read_bytes()
