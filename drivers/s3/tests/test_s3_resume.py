"""Resume from the store: a killed copy, a resume from another state directory, and the driver's refusals."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import crc32c
import pytest
from transfercore_s3.layout import LAYOUT_PART
from transfercore_s3.seaweed import SeaweedS3

from transfercore import RangeSet
from transfercore.errors import RestartRejected, SourceChanged
from transfercore.registry import open_location
from transfercore.testing.throttle import Throttle

TRANSFERCORE = str(Path(sys.executable).parent / "transfercore")
MiB = 1024 * 1024
PART = 8 * MiB


def data_parts(seaweed: SeaweedS3, bucket: str, key: str, client: Any = None) -> dict[int, int]:
    """The data parts the store lists for the key's unfinished upload (number: size)."""
    client = client or seaweed.client()
    uploads = [u for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) if u["Key"] == key]
    if not uploads:
        return {}
    parts = client.list_parts(Bucket=bucket, Key=key, UploadId=uploads[-1]["UploadId"]).get("Parts", [])
    return {p["PartNumber"]: p["Size"] for p in parts if p["PartNumber"] != LAYOUT_PART}


def settled_parts(seaweed: SeaweedS3, bucket: str, key: str) -> dict[int, int]:
    """The listed parts once no more arrive: the store finishes a part whose body it
    had received when the client was killed, and acknowledges it to no one."""
    listed, since, deadline = data_parts(seaweed, bucket, key), time.monotonic(), time.monotonic() + 20
    while time.monotonic() - since < 1.0 and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the store, bounded by the deadline
        now = data_parts(seaweed, bucket, key)
        if now != listed:
            listed, since = now, time.monotonic()
    return listed


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def sha256_of_object(seaweed: SeaweedS3, bucket: str, key: str) -> str:
    body = seaweed.client().get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.sha256()
    for chunk in iter(lambda: body.read(MiB), b""):
        digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.parametrize(("size_mib", "other_state"), [(128, False), (96, True)], ids=["same-state", "other-state"])
def test_killed_copy_resumes_from_list_parts(
    seaweed: SeaweedS3, bucket: str, s3env: dict[str, str], tmp_path: Path, size_mib: int, other_state: bool
) -> None:
    size = size_mib * MiB + 4321
    source = tmp_path / "big.bin"
    with open(source, "wb") as fh:
        for _ in range(size_mib):
            fh.write(os.urandom(MiB))
        fh.write(os.urandom(4321))
    url = f"s3://{bucket}/big.bin?endpoint={seaweed.endpoint}"
    command = [TRANSFERCORE, "copy", "--json", str(source), url]
    poller = seaweed.client()  # one client: making one per poll costs more than a part's upload
    first = subprocess.Popen(command, env=s3env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(first.stdout or ()), daemon=True)
    reader.start()

    def reported() -> int:
        return max([e["bytes_sent"] for e in events("\n".join(list(lines))) if e["event"] == "progress"], default=0)

    # The copy slowed (SIGSTOP/SIGCONT) until the kill point: unslowed, a quiet
    # store can take every part between two polls, and the kill comes too late.
    throttle = Throttle(first.pid, duty=0.2, period=0.05)
    try:
        deadline = time.monotonic() + 120
        # killed once the store lists 3 parts and the copy has reported bytes
        # sent, so that what it reported can be checked against the store
        while ((len(data_parts(seaweed, bucket, "big.bin", poller)) < 3 or reported() == 0)
               and first.poll() is None and time.monotonic() < deadline):
            time.sleep(0.02)  # polling the store, bounded by the deadline
        os.kill(first.pid, signal.SIGKILL)
    finally:
        throttle.close()
        first.wait(30)
        reader.join(30)
    out = "\n".join(lines)
    assert first.returncode == -signal.SIGKILL
    handed = max([e["bytes_sent"] for e in events(out) if e["event"] == "progress"], default=0)
    listed = settled_parts(seaweed, bucket, "big.bin")
    acknowledged = sum(listed.values())
    assert 3 <= len(listed) < -(-size // PART), f"the kill came too late to test a resume: {listed}"
    # nothing under the key until CompleteMultipartUpload
    assert seaweed.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    env = s3env | ({"XDG_STATE_HOME": str(tmp_path / "another-state")} if other_state else {})
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert second.returncode == 0, second.stderr
    done = [e for e in events(second.stdout) if e["event"] == "done"][0]
    # every acknowledged part is resumed, none sent again; the rest is sent once
    assert done["bytes_resumed"] == acknowledged
    assert done["bytes_sent"] == size - acknowledged
    # every write the killed run saw return had been acknowledged: only parts in flight are lost
    assert 0 < handed <= acknowledged
    print(f"killed after {len(listed)} parts acknowledged ({acknowledged} bytes, {handed} reported sent); "
          f"the rerun resumed {done['bytes_resumed']} and sent {done['bytes_sent']}")
    assert sha256_of_object(seaweed, bucket, "big.bin") == hashlib.sha256(source.read_bytes()).hexdigest()
    assert data_parts(seaweed, bucket, "big.bin") == {}


def test_driver_resume_is_checked_against_the_store(seaweed: SeaweedS3, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    endpoint = open_location(f"s3://{bucket}/obj?endpoint={seaweed.endpoint}&part_size=5MiB")
    driver, path = endpoint.driver, endpoint.path
    part = 5 * MiB
    size = 3 * part + 100
    data = os.urandom(size)
    writer = driver.open_write(path, size)
    writer.write(2 * part, data[2 * part : 3 * part])  # part 3 first: parts go in any order
    writer.write(0, data[:part])
    assert writer.durable() == RangeSet.of((0, part), (2 * part, 3 * part))
    writer.write(3 * part, data[3 * part :])  # the short last part, sent at once too
    writer.abort()
    recorded = RangeSet.of((0, part), (2 * part, size))
    assert driver.partial(path) == recorded
    with pytest.raises(RestartRejected, match="not all durable"):
        driver.open_write(path, size, resume=RangeSet.span(0, 2 * part))  # part 2 is not listed
    with pytest.raises(RestartRejected, match="not started for"):
        driver.open_write(path, size + 1, resume=RangeSet.span(0, part))  # another size
    assert driver.partial(path) == recorded  # a refused resume discards nothing
    writer = driver.open_write(path, size, resume=RangeSet.span(0, part))
    assert writer.resumed == RangeSet.span(0, part)  # parts outside the marker are sent again
    writer.write(part, data[part : 2 * part])
    writer.write(2 * part, data[2 * part :])
    writer.complete()
    assert seaweed.client().get_object(Bucket=bucket, Key="obj")["Body"].read() == data
    assert driver.partial(path) == RangeSet()


def test_a_source_that_changes_while_read_is_detected(seaweed: SeaweedS3, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    client = seaweed.client()
    size = 300 * 1024  # larger than what opening an object fetches of it
    client.put_object(Bucket=bucket, Key="src", Body=b"a" * size)
    client.put_object(Bucket=bucket, Key="small", Body=b"a" * 1000)
    endpoint = open_location(f"s3://{bucket}/src?endpoint={seaweed.endpoint}")
    driver, path = endpoint.driver, endpoint.path
    reader = driver.open_read(path)
    small = driver.open_read("/small")  # fetched whole as it was opened
    assert reader.read(0, 10) == b"a" * 10
    client.put_object(Bucket=bucket, Key="src", Body=b"b" * size)
    client.put_object(Bucket=bucket, Key="small", Body=b"b" * 1000)
    with pytest.raises(SourceChanged):
        reader.read(size - 10, 10)
    # never two versions mixed: the small one reads as it was when opened, and
    # its ETag (stat's identity) says it changed since
    assert small.read(0, 1000) == b"a" * 1000
    assert driver.stat("/small").identity != f'"{hashlib.md5(b"a" * 1000).hexdigest()}"'


def test_unfinished_uploads_are_listed_and_aborted(seaweed: SeaweedS3, bucket: str, s3env: dict[str, str]) -> None:
    client = seaweed.client()
    client.create_multipart_upload(Bucket=bucket, Key="keep/a")
    upload = client.create_multipart_upload(Bucket=bucket, Key="old/b")["UploadId"]
    client.upload_part(Bucket=bucket, Key="old/b", UploadId=upload, PartNumber=1, Body=b"x" * 100)
    command = [sys.executable, "-m", "transfercore_s3", "uploads", f"s3://{bucket}/old?endpoint={seaweed.endpoint}"]
    listed = subprocess.run(command, env=s3env, capture_output=True, text=True, timeout=60, check=False)
    assert listed.returncode == 0, listed.stderr
    assert f"s3://{bucket}/old/b" in listed.stdout and "keep/a" not in listed.stdout
    assert "1 parts" in listed.stdout and " 100 bytes" in listed.stdout
    aborted = subprocess.run([*command, "--abort"], env=s3env, capture_output=True, text=True, timeout=60, check=False)
    assert aborted.returncode == 0 and "aborted 1 unfinished upload" in aborted.stdout, aborted
    assert [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])] == ["keep/a"]


def test_the_store_s_own_checksum_of_a_single_put(seaweed: SeaweedS3, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    endpoint = open_location(f"s3://{bucket}/x?endpoint={seaweed.endpoint}&part_size=5MiB")
    driver = endpoint.driver
    small, large = os.urandom(1000), os.urandom(5 * MiB + 1)
    for path, data in (("/small", small), ("/large", large)):
        writer = driver.open_write(path, len(data))
        writer.write(0, data)
        writer.complete()
    assert driver.checksum("/small", "crc32c") == f"{crc32c.crc32c(small):08x}"
    assert driver.checksum("/small", "md5") == hashlib.md5(small).hexdigest()
    # a multipart upload with CRC32C parts: the whole object's CRC32C, which the
    # store combined from the parts' it checked; its ETag is composite (-N)
    assert driver.checksum("/large", "crc32c") == f"{crc32c.crc32c(large):08x}"
    assert driver.checksum("/large", "md5") is None
    # with MD5 parts there is no whole-object value at all: the caller must read it back
    md5_parts = open_location(f"s3://{bucket}/x?endpoint={seaweed.endpoint}&part_size=5MiB&checksum=md5").driver
    writer = md5_parts.open_write("/large-md5", len(large))
    writer.write(0, large)
    writer.complete()
    assert md5_parts.checksum("/large-md5", "crc32c") is None and md5_parts.checksum("/large-md5", "md5") is None
