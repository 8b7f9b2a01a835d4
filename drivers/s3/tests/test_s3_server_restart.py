"""What the store keeps of an unfinished upload when the server itself stops or crashes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from transfercore_s3.layout import LAYOUT_PART
from transfercore_s3.seaweed import SeaweedS3

from transfercore import RangeSet
from transfercore.registry import open_location

TRANSFERCORE = str(Path(sys.executable).parent / "transfercore")
MiB = 1024 * 1024


def test_acknowledged_parts_survive_a_server_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = SeaweedS3(tmp_path / "seaweed")
    server.start()
    try:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        server.client().create_bucket(Bucket="restart")
        part = 5 * MiB
        size = 3 * part
        data = os.urandom(size)
        endpoint = open_location(f"s3://restart/obj?endpoint={server.endpoint}&part_size=5MiB")
        writer = endpoint.driver.open_write(endpoint.path, size)
        writer.write(0, data[:part])
        writer.write(2 * part, data[2 * part :])
        marker = writer.durable()
        assert marker == RangeSet.of((0, part), (2 * part, size))
        # the server process crashes right after acknowledging (SIGKILL: what it
        # wrote is in the host's page cache, which a power cut would lose, see README)
        server.kill()
        server.start()
        endpoint = open_location(f"s3://restart/obj?endpoint={server.endpoint}&part_size=5MiB")
        assert endpoint.driver.partial(endpoint.path) == marker
        writer = endpoint.driver.open_write(endpoint.path, size, resume=marker)
        assert writer.resumed == marker
        writer.write(part, data[part : 2 * part])
        writer.complete()
        assert server.client().get_object(Bucket="restart", Key="obj")["Body"].read() == data
    finally:
        server.kill()


def _data_parts(server: SeaweedS3, bucket: str, key: str) -> dict[int, int]:
    client = server.client()
    uploads = [u for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) if u["Key"] == key]
    if not uploads:
        return {}
    parts = client.list_parts(Bucket=bucket, Key=key, UploadId=uploads[-1]["UploadId"]).get("Parts", [])
    return {p["PartNumber"]: p["Size"] for p in parts if p["PartNumber"] != LAYOUT_PART}


def test_server_killed_mid_copy_fails_in_one_line_and_the_same_command_resumes(tmp_path: Path) -> None:
    size = 64 * MiB + 777
    source = tmp_path / "big.bin"
    with open(source, "wb") as fh:
        for _ in range(64):
            fh.write(os.urandom(MiB))
        fh.write(os.urandom(777))
    server = SeaweedS3(tmp_path / "seaweed")
    server.start()
    try:
        server.client().create_bucket(Bucket="killed")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | server.env()
        env |= {"XDG_STATE_HOME": str(tmp_path / "state"), "AWS_CONFIG_FILE": str(tmp_path / "none"),
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
        command = [TRANSFERCORE, "copy", "--json", str(source), f"s3://killed/big.bin?endpoint={server.endpoint}"]
        copy = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while len(_data_parts(server, "killed", "big.bin")) < 2 and copy.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)  # polling the store, bounded by the deadline
            assert copy.poll() is None, "the copy ended before the server could be killed"
            server.kill()  # SIGKILL by PID, mid-upload
            out, err = copy.communicate(timeout=120)
        finally:
            if copy.poll() is None:
                copy.kill()
                copy.communicate(timeout=30)
        assert copy.returncode == 1, (copy.returncode, err)
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "cannot reach the S3 endpoint" in lines[0], err
        assert "run the same command again to resume" in lines[0] and "Traceback" not in err
        server.start()  # the same directory and ports
        client = server.client()
        assert client.list_objects_v2(Bucket="killed").get("KeyCount", 0) == 0  # nothing published
        listed = _data_parts(server, "killed", "big.bin")
        assert 2 <= len(listed) < 9, listed
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert again.returncode == 0, again.stderr
        done = [e for e in (json.loads(line) for line in again.stdout.splitlines() if line.startswith("{"))
                if e["event"] == "done"][0]
        # the parts the store kept across its crash are resumed, not sent again
        assert done["bytes_resumed"] == sum(listed.values()), (done, listed)
        assert done["bytes_sent"] == size - done["bytes_resumed"]
        body = client.get_object(Bucket="killed", Key="big.bin")["Body"].read()
        assert hashlib.sha256(body).digest() == hashlib.sha256(source.read_bytes()).digest()
        assert _data_parts(server, "killed", "big.bin") == {}
    finally:
        server.kill()
