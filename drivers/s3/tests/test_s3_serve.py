"""`transfercore serve --driver s3://...`: the real globus-url-copy into an object store."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from transfercore_s3.seaweed import SeaweedS3

from transfercore import RangeSet

TRANSFERCORE = str(Path(sys.executable).parent / "transfercore")
MiB = 1024 * 1024
PART = 8 * MiB


def test_globus_url_copy_into_serve_s3(seaweed: SeaweedS3, bucket: str, s3env: dict[str, str], tmp_path: Path) -> None:
    size = 64 * MiB + 999
    source = tmp_path / "big"
    source.write_bytes(os.urandom(size))
    port_file = tmp_path / "port"
    server = subprocess.Popen(
        [TRANSFERCORE, "serve", "--driver", f"s3://{bucket}/?endpoint={seaweed.endpoint}", "--anonymous-write",
         "--port", "0", "--port-file", str(port_file), "--marker-interval", "0.2"],
        env=s3env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()) and time.monotonic() < deadline:
            assert server.poll() is None, server.communicate()[1]
            time.sleep(0.05)  # waiting for the server's port file, bounded by the deadline
        port = int(port_file.read_text())
        client = subprocess.run(
            ["globus-url-copy", "-dbg", "-p", "4", "-fast", f"file://{source}", f"ftp://127.0.0.1:{port}/in/big"],
            capture_output=True, text=True, timeout=120, check=False,
        )
        assert client.returncode == 0, client.stderr[-2000:]
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.communicate(timeout=30)
    markers = [RangeSet.parse(m) for m in re.findall(r"111 Range Marker ([0-9,-]+)", client.stdout + client.stderr)]
    assert markers, "the server sent no restart marker"
    for marker in markers:
        # a marker names only acknowledged parts: whole parts, the last one ending at the size
        for r in marker:
            assert r.start % PART == 0 and (r.end % PART == 0 or r.end == size), (marker, r)
    union = RangeSet()
    for marker in markers:
        union = union | marker
    assert RangeSet.span(0, size).contains(union)
    print(f"{len(markers)} restart markers, all whole parts: {[str(m) for m in markers]}")
    body = seaweed.client().get_object(Bucket=bucket, Key="in/big")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(source.read_bytes()).digest()
