"""The lean request path: its SigV4 signature, and its answers against the real store."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import botocore.auth
import crc32c
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from transfercore_s3.environment import from_environment
from transfercore_s3.seaweed import SeaweedS3
from transfercore_s3.sigv4 import EMPTY_SHA256, Credentials, encode_path, sign
from transfercore_s3.store import Store

from transfercore.errors import NotFound, PermissionDenied, StorageError

EXAMPLE = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


def test_the_published_get_object_example() -> None:
    # the GET Object example of the S3 SigV4 documentation (header-based auth)
    headers = {"host": "examplebucket.s3.amazonaws.com", "range": "bytes=0-9"}
    added = sign("GET", "/test.txt", [], headers, EMPTY_SHA256, EXAMPLE, "us-east-1", datetime(2013, 5, 24, tzinfo=UTC))
    assert added["x-amz-date"] == "20130524T000000Z"
    assert added["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


@pytest.mark.parametrize("key", ["plain", "dir/with space+plus/é~$*", "a%2Fb?c=d&e"])
def test_the_signature_is_botocore_s(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    body = b"some bytes"
    sha = hashlib.sha256(body).hexdigest()
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    path = encode_path(f"/bucket/{key}")
    query = [("list-type", "2"), ("prefix", "a b/"), ("start-after", "x+y")]
    extra = {"x-amz-checksum-crc32c": "AAAAAA==", "Content-MD5": "abc="}
    ours = sign("PUT", path, query, {"host": "127.0.0.1:8333", **extra}, sha, Credentials("AK", "SK", "tok/en=="),
                "eu-west-3", when)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: when.replace(tzinfo=None))
    url = f"http://127.0.0.1:8333{path}?list-type=2&prefix=a%20b%2F&start-after=x%2By"
    request = AWSRequest(method="PUT", url=url, data=body, headers=dict(extra))
    S3SigV4Auth(BotoCredentials("AK", "SK", "tok/en=="), "s3", "eu-west-3").add_auth(request)
    assert request.headers["X-Amz-Content-SHA256"] == sha
    assert ours["Authorization"] == request.headers["Authorization"]


@pytest.fixture
def store(seaweed: SeaweedS3, bucket: str, monkeypatch: pytest.MonkeyPatch) -> Store:
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    made = Store(bucket, endpoint=seaweed.endpoint, region=None, profile=None, addressing="path", connections=8)
    assert made.lean is not None
    made.check_bucket()
    return made


def test_puts_heads_and_listings_agree_with_botocore(store: Store, seaweed: SeaweedS3, bucket: str) -> None:
    client = seaweed.client()
    keys = ["d/plain", "d/with space", "d/plus+sign", "d/é unicode", "d/sub/deeper", "d/%41 not decoded twice"]
    for i, key in enumerate(keys):
        data = bytes([i]) * (100 + i)
        answer = store.put_object(key, data, "crc32c" if i % 2 else "md5")
        assert answer["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        if i % 2:
            assert answer["ChecksumCRC32C"] == base64.b64encode(crc32c.crc32c(data).to_bytes(4, "big")).decode()
        assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == data
        head, theirs = store.head(key), client.head_object(Bucket=bucket, Key=key)
        assert head is not None
        assert {k: head[k] for k in ("ContentLength", "ETag", "LastModified")} == {
            k: theirs[k] for k in ("ContentLength", "ETag", "LastModified")}
    assert store.head("d/missing") is None
    ours = list(store.pages("d/", page_size=2))  # several pages, continued by token
    assert len(ours) > 1
    theirs = client.list_objects_v2(Bucket=bucket, Prefix="d/", Delimiter="/")
    assert [c["Key"] for p in ours for c in p["Contents"]] == [c["Key"] for c in theirs["Contents"]]
    assert [c["Prefix"] for p in ours for c in p["CommonPrefixes"]] == ["d/sub/"]
    assert {c["Key"]: (c["Size"], c["ETag"], c["LastModified"]) for p in ours for c in p["Contents"]} == {
        c["Key"]: (c["Size"], c["ETag"], c["LastModified"]) for c in theirs["Contents"]}
    after = list(store.pages("d/", start_after="d/plain"))
    assert [c["Key"] for p in after for c in p["Contents"]] == ["d/plus+sign", "d/with space", "d/é unicode"]


def test_a_body_that_does_not_match_its_checksum_is_refused(store: Store, seaweed: SeaweedS3, bucket: str) -> None:
    assert store.lean is not None
    wrong = {"x-amz-checksum-crc32c": base64.b64encode(b"\0\0\0\0").decode()}
    data = b"not what the checksum says"
    with pytest.raises(StorageError, match="Bad|bad|mismatch|did not match"):
        store.lean.put_object("bad", data, wrong, hashlib.sha256(data).hexdigest(), "cannot store bad")
    assert seaweed.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_refusals_in_the_project_s_words(seaweed: SeaweedS3, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    missing = Store("no-such-bucket-lean", endpoint=seaweed.endpoint, region=None, profile=None, addressing="path",
                    connections=2)
    with pytest.raises(NotFound, match="does not exist"):
        missing.check_bucket()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    denied = Store(bucket, endpoint=seaweed.endpoint, region=None, profile=None, addressing="path", connections=2)
    with pytest.raises(PermissionDenied, match="access denied"):
        denied.check_bucket()
    with pytest.raises(PermissionDenied, match="access denied"):
        denied.put_object("x", b"x", "crc32c")
    assert "no-such-bucket-lean" not in [b["Name"] for b in seaweed.client().list_buckets()["Buckets"]]


def test_the_environment_alone_decides_only_what_botocore_would_read_there() -> None:
    env = {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK", "AWS_DEFAULT_REGION": "eu-west-3"}
    assert from_environment(env, profile=None, region=None, https=False) == (Credentials("AK", "SK"), "eu-west-3")
    assert from_environment(env, profile=None, region="us-east-2", https=False) == (Credentials("AK", "SK"), "us-east-2")
    tokens = env | {"AWS_SESSION_TOKEN": "session", "AWS_SECURITY_TOKEN": "security"}
    found = from_environment(tokens, profile=None, region=None, https=False)
    assert found is not None and found[0].token == "security"  # botocore's order
    # the rest is botocore's: a profile, expiring credentials, a region or CA bundle from the config file
    for other in ({"AWS_PROFILE": "p"}, {"AWS_DEFAULT_PROFILE": "p"}, {"AWS_CREDENTIAL_EXPIRATION": "2030-01-01T00:00:00Z"},
                  {"AWS_SECRET_ACCESS_KEY": ""}, {"AWS_DEFAULT_REGION": ""}):
        assert from_environment(env | other, profile=None, region=None, https=False) is None, other
    assert from_environment(env, profile="p", region=None, https=False) is None
    assert from_environment(env, profile=None, region=None, https=True) is None
    assert from_environment(env | {"AWS_CA_BUNDLE": "/ca.pem"}, profile=None, region=None, https=True) is not None


def test_a_tree_of_small_files_needs_no_botocore(seaweed: SeaweedS3, bucket: str, tmp_path: Path) -> None:
    # what a tree copy asks goes the lean way: botocore (a fifth of a second of
    # CPU to import, more to load the S3 model) is not loaded at all
    for i in range(5):
        (tmp_path / f"f{i}").write_bytes(bytes([i]) * 100)
    script = textwrap.dedent(f"""
        import os, sys
        from transfercore.contract import LocalFile
        from transfercore.registry import open_location
        driver = open_location("s3://{bucket}/t/?endpoint={seaweed.endpoint}").driver
        files = []
        for name in sorted(os.listdir({str(tmp_path)!r})):
            path = os.path.join({str(tmp_path)!r}, name)
            st = os.lstat(path)
            files.append(LocalFile(path, "/t/" + name, st.st_size, st.st_mtime_ns, st.st_mode, st.st_dev, st.st_ino))
        out = driver.copy_local_batch(files, "crc32c")
        assert out is not None and all(o is not None for o in out), out
        driver.mkdir("/t/empty")
        assert [i.path for i in driver.list("/t")][:2] == ["/t/empty", "/t/f0"]
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("botocore", "boto3")))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | seaweed.env()
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert len(seaweed.client().list_objects_v2(Bucket=bucket, Prefix="t/")["Contents"]) == 6


def test_connections_the_store_closed_while_idle_are_replaced(store: Store, seaweed: SeaweedS3, bucket: str) -> None:
    lean = store.lean
    assert lean is not None
    with ThreadPoolExecutor(4) as pool:  # several connections in the pool
        list(pool.map(lambda i: store.put_object(f"warm/{i}", b"x", "crc32c"), range(8)))
    idle = list(lean._idle)
    assert len(idle) >= 2
    for conn in idle:  # as when the store drops idle connections
        assert conn.sock is not None
        conn.sock.shutdown(socket.SHUT_RDWR)
    assert store.put_object("after", b"data", "crc32c")["ETag"] == f'"{hashlib.md5(b"data").hexdigest()}"'
    assert store.head("after") is not None
    assert seaweed.client().get_object(Bucket=bucket, Key="after")["Body"].read() == b"data"
