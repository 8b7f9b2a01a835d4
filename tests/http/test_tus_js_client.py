"""tus-js-client (under node, from npm) against the real server, which is SIGKILLed and restarted mid-upload."""

from __future__ import annotations

import shutil
import subprocess
import threading
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


class Client:
    """``upload.mjs`` running; its output lines are gathered by a thread as they come."""

    def __init__(self, node: str, endpoint: str, src: Path, name: str, chunk: int) -> None:
        self.proc = subprocess.Popen([node, str(NODE_DIR / "upload.mjs"), endpoint, str(src), name, str(chunk)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def said(self, word: str) -> list[str]:
        return [line.partition(" ")[2] for line in list(self.lines) if line.partition(" ")[0] == word]

    def ended(self) -> bool:
        return bool(self.said("DONE") or self.said("ERROR")) or self.proc.poll() is not None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._reader.join(10)


def test_tus_js_client_uploads_256_mib_across_a_kill_mid_request(
    serve_http, node: str, poll, big_source, destination, recorded_offsets
) -> None:
    """256 MiB into posix or HPSS; the server is SIGKILLed while a 64 MiB request is half through."""
    server = serve_http(*destination.args, env=destination.env)
    chunk = 64 * MiB
    js = Client(node, f"{server.base}/files/", big_source.path, "js.bin", chunk)
    try:
        # a durable point the server recorded inside a request (not at a chunk's end), past the first chunk
        poll(lambda: any(o > chunk and o % chunk for o in recorded_offsets(server.state)) or js.ended(),
             timeout=120, what="a durable point mid-request")
        assert not js.ended(), js.lines
        server.kill()
        (kept,) = recorded_offsets(server.state)
        acked_before = [int(a) for a in js.said("ACK")]
        assert destination.sha256("js.bin") is None  # nothing published while incomplete
        assert max(acked_before, default=0) <= kept  # every offset acknowledged was recorded first
        server.start()
        # the client prints its upload's URL again when it retries: always the same one
        urls = set(js.said("URL"))
        assert len(urls) == 1, urls
        (url,) = urls
        head = server.request("HEAD", url[len(server.base):], {"Tus-Resumable": "1.0.0"})
        assert head.status == 200
        assert kept <= int(head.headers["upload-offset"]) < big_source.size  # the cut request's durable part kept
        poll(js.ended, timeout=180, what="tus-js-client to finish")
        assert js.proc.wait(10) == 0 and js.said("DONE") and not js.said("ERROR"), js.lines
    finally:
        js.stop()
    acked = [int(a) for a in js.said("ACK")]
    assert acked == sorted(acked) and acked[-1] == big_source.size
    assert destination.sha256("js.bin") == big_source.sha256
