"""The real globus-gridftp-server with the transfercore DSI over an object store."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest
from transfercore_globus_dsi import module_path
from transfercore_globus_dsi.testing import GLOBUS_MISSING, DsiServer, guc, have_globus
from transfercore_s3.seaweed import SeaweedS3

from transfercore import RangeSet

MiB = 1024 * 1024
PART = 8 * MiB


def test_globus_url_copy_p4_into_the_dsi_over_s3(
    seaweed: SeaweedS3, bucket: str, s3env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not have_globus():
        pytest.fail(GLOBUS_MISSING)
    if not os.path.exists(module_path()):
        pytest.fail(f"the DSI module was not built: {module_path()} is missing")
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in s3env.items():
        monkeypatch.setenv(name, value)  # the server and its sessions inherit the credentials
    size = 40 * MiB + 4321
    source = tmp_path / "src.bin"
    source.write_bytes(os.urandom(size))
    work = tmp_path / "dsi"
    work.mkdir()
    server = DsiServer(f"s3://{bucket}/?endpoint={seaweed.endpoint}", work,
                       dsi_options=["durable_interval=0.05"]).start()
    try:
        proc = guc("-dbg", "-vb", "-fast", "-p", "4", f"file://{source}", server.ftp("/in/obj.bin"), timeout=120)
        back = tmp_path / "back.bin"
        guc("-fast", "-p", "4", server.ftp("/in/obj.bin"), f"file://{back}", timeout=120)
    finally:
        server.stop()
    client = seaweed.client()
    body = client.get_object(Bucket=bucket, Key="in/obj.bin")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(source.read_bytes()).digest()
    assert back.read_bytes() == source.read_bytes()
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    # every 111 marker the server sent names only acknowledged parts: whole parts
    markers = [RangeSet.parse(m) for m in re.findall(r"^111 Range Marker (\S+)", proc.stdout + proc.stderr, re.MULTILINE)]
    assert markers, "the server sent no restart marker"
    for marker in markers:
        for r in marker:
            assert r.start % PART == 0 and (r.end % PART == 0 or r.end == size), (marker, r)
    print(f"{len(markers)} restart markers, all whole parts: {[str(m) for m in markers]}")
