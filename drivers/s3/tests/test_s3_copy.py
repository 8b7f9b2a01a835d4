"""The command line against a real SeaweedFS: copies both ways, and bad input refused with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from transfercore_s3.seaweed import SeaweedS3, free_ports

TRANSFERCORE = str(Path(sys.executable).parent / "transfercore")
MiB = 1024 * 1024


def run(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TRANSFERCORE, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def unfinished(seaweed: SeaweedS3, bucket: str) -> list[str]:
    return [u["Key"] for u in seaweed.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def keys(seaweed: SeaweedS3, bucket: str, prefix: str = "") -> list[str]:
    pages = seaweed.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


@pytest.mark.parametrize("size", [0, 21 * MiB + 12345])
def test_copy_posix_to_s3_and_back_is_identical(
    seaweed: SeaweedS3, bucket: str, s3env: dict[str, str], tmp_path: Path, size: int
) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(size))
    url = f"s3://{bucket}/dir/obj.bin?endpoint={seaweed.endpoint}"
    up = run(s3env, "copy", "-q", str(source), url)
    assert up.returncode == 0, up.stderr
    head = seaweed.client().head_object(Bucket=bucket, Key="dir/obj.bin")
    assert head["ContentLength"] == size
    if size > 8 * MiB:
        # three 8 MiB parts, published by CompleteMultipartUpload (the layout record is not part of it)
        assert head["ETag"].endswith('-3"'), head["ETag"]
    assert unfinished(seaweed, bucket) == []
    back = tmp_path / "back.bin"
    down = run(s3env, "copy", "-q", url, str(back))
    assert down.returncode == 0, down.stderr
    assert back.read_bytes() == source.read_bytes()


def _bad_inputs(seaweed: SeaweedS3, bucket: str, env: dict[str, str]) -> dict[str, tuple[str, dict[str, str], str]]:
    good = f"?endpoint={seaweed.endpoint}"
    dead = f"?endpoint=http://127.0.0.1:{free_ports(1)[0]}"
    return {
        "missing-bucket": (f"s3://no-such-bucket-here/obj{good}", env, "does not exist"),
        "wrong-credentials": (f"s3://{bucket}/obj{good}", env | {"AWS_SECRET_ACCESS_KEY": "wrong"}, "access denied"),
        "unreachable-endpoint": (f"s3://{bucket}/obj{dead}", env, "cannot reach the S3 endpoint"),
        "part-size-below-5MiB": (f"s3://{bucket}/obj{good}&part_size=4MiB", env, "below S3's minimum of 5 MiB"),
        "key-too-long": (f"s3://{bucket}/{'k' * 1100}{good}", env, "longer than S3's 1024"),
    }


@pytest.mark.parametrize(
    "case", ["missing-bucket", "wrong-credentials", "unreachable-endpoint", "part-size-below-5MiB", "key-too-long"]
)
def test_bad_input_one_line_and_nothing_published(
    seaweed: SeaweedS3, bucket: str, s3env: dict[str, str], tmp_path: Path, case: str
) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(9 * MiB))
    url, env, words = _bad_inputs(seaweed, bucket, s3env)[case]
    result = run(env, "copy", "-q", str(source), url, timeout=60)
    assert result.returncode in (1, 2), result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert keys(seaweed, bucket) == [] and unfinished(seaweed, bucket) == []
    buckets = [b["Name"] for b in seaweed.client().list_buckets()["Buckets"]]
    assert "no-such-bucket-here" not in buckets  # SeaweedFS would create it on a PUT


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_tree_of_1000_files_into_a_prefix_and_back(seaweed: SeaweedS3, bucket: str, s3env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "tree"
    for d in range(4):
        (source / f"d{d}" / "sub").mkdir(parents=True)
        for i in range(250):
            (source / f"d{d}" / ("sub" if i % 5 == 0 else "") / f"f{i}").write_bytes(os.urandom(37 * i % 9000))
    (source / "d0" / "sub" / "big").write_bytes(os.urandom(9 * MiB))  # two parts
    (source / "empty").mkdir()
    url = f"s3://{bucket}/backup/tree?endpoint={seaweed.endpoint}"
    up = run(s3env, "copy", "-q", "-r", str(source), url)
    assert up.returncode == 0, up.stderr
    # the files, and a marker for each of the 10 directories
    assert len(keys(seaweed, bucket, "backup/")) == 1001 + 10
    again = run(s3env, "copy", "-r", str(source), url)
    assert again.returncode == 0 and "0 copied" in again.stdout and "1001 already complete" in again.stdout, again.stdout
    back = tmp_path / "back"
    down = run(s3env, "copy", "-q", "-r", url, str(back))
    assert down.returncode == 0, down.stderr
    assert _tree(back) == _tree(source)
    assert (back / "empty").is_dir()


def test_credentials_from_a_profile_of_the_shared_file(
    seaweed: SeaweedS3, bucket: str, s3env: dict[str, str], tmp_path: Path
) -> None:
    env = {k: v for k, v in s3env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    Path(env["AWS_SHARED_CREDENTIALS_FILE"]).write_text(
        f"[store]\naws_access_key_id = {s3env['AWS_ACCESS_KEY_ID']}\n"
        f"aws_secret_access_key = {s3env['AWS_SECRET_ACCESS_KEY']}\n"
    )
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(1000))
    good = run(env, "copy", "-q", str(source), f"s3://{bucket}/obj?endpoint={seaweed.endpoint}&profile=store")
    assert good.returncode == 0, good.stderr
    assert keys(seaweed, bucket) == ["obj"]
    missing = run(env, "copy", "-q", str(source), f"s3://{bucket}/other?endpoint={seaweed.endpoint}&profile=nobody")
    assert missing.returncode == 2 and "profile 'nobody' is not in" in missing.stderr, missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def test_s3_to_hpss(seaweed: SeaweedS3, bucket: str, s3env: dict[str, str], tmp_path: Path) -> None:
    data = os.urandom(17 * MiB + 3)
    seaweed.client().put_object(Bucket=bucket, Key="src", Body=data)
    # the HPSS emulator's default store lives under this test's own state directory
    to_hpss = run(s3env, "copy", "-q", f"s3://{bucket}/src?endpoint={seaweed.endpoint}", "hpss:///from-s3?segment=8MiB")
    assert to_hpss.returncode == 0, to_hpss.stderr
    back = tmp_path / "back"
    out = run(s3env, "copy", "-q", "hpss:///from-s3", str(back))
    assert out.returncode == 0, out.stderr
    assert back.read_bytes() == data


@pytest.mark.parametrize(("size", "algorithm", "method"),
                         [(1 * MiB, "crc32c", "storage"), (1 * MiB, "md5", "storage"), (21 * MiB, "md5", "read-back")])
def test_the_verification_names_the_check_it_did(
    seaweed: SeaweedS3, bucket: str, s3env: dict[str, str], tmp_path: Path, size: int, algorithm: str, method: str
) -> None:
    """S3 declares no checksum algorithm, yet the store gives the CRC32C it checked on arrival, and
    the ETag of one PUT is its MD5: that is the check, and the line says so.  A multipart object's
    ETag is no MD5: the object is read back."""
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(size))
    url = f"s3://{bucket}/obj.bin?endpoint={seaweed.endpoint}"
    up = run(s3env, "copy", "--checksum", algorithm, str(source), url)
    assert up.returncode == 0, up.stderr
    assert f"verifying {algorithm.upper()} ({method})" in up.stdout, up.stdout
