"""copy_local_batch: small local files as single PUTs, each confirmed by the store's answer."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from pathlib import Path

import crc32c
import pytest
from transfercore_s3.batch import confirmed
from transfercore_s3.seaweed import SeaweedS3

from transfercore.contract import LocalFile
from transfercore.registry import open_location

MiB = 1024 * 1024


def _local(path: Path, dst: str) -> LocalFile:
    st = os.lstat(path)
    return LocalFile(str(path), dst, st.st_size, st.st_mtime_ns, st.st_mode, st.st_dev, st.st_ino)


@pytest.fixture
def driver(seaweed: SeaweedS3, bucket: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    return open_location(f"s3://{bucket}/?endpoint={seaweed.endpoint}&part_size=5MiB").driver


def test_a_batch_is_published_with_the_facts_stat_reports(driver, seaweed: SeaweedS3, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    files = []
    for i in range(30):
        p = tmp_path / f"f{i:02d}"
        p.write_bytes(os.urandom(i * 311))
        files.append(_local(p, f"/d{i % 3}/f{i:02d}"))
    big = tmp_path / "big"
    big.write_bytes(os.urandom(5 * MiB))  # a part or more: left to a multipart upload
    files.append(_local(big, "/big"))
    out = driver.copy_local_batch(files, "crc32c")
    assert out is not None and out[-1] is None
    assert driver.store.head("big") is None
    client = seaweed.client()
    for file, result in zip(files[:-1], out[:-1], strict=True):
        assert result is not None, file
        checksum, info = result
        data = Path(file.source).read_bytes()
        assert client.get_object(Bucket=bucket, Key=file.path[1:])["Body"].read() == data
        assert checksum == f"{crc32c.crc32c(data):08x}"
        # what a later run compares: exactly what stat and list report
        assert info == driver.stat(file.path)
        assert info in list(driver.list(file.path.rsplit("/", 1)[0]))
    md5 = driver.copy_local_batch(files[:2], "md5")
    assert md5 is not None and md5[1] is not None
    assert md5[1][0] == hashlib.md5(Path(files[1].source).read_bytes()).hexdigest()
    # an algorithm the store cannot give: the caller copies the ordinary way
    assert driver.copy_local_batch(files[:2], "sha256") is None


def test_a_file_changed_since_the_walk_is_not_published(driver, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    grown, replaced, kept = tmp_path / "grown", tmp_path / "replaced", tmp_path / "kept"
    for p in (grown, replaced, kept):
        p.write_bytes(b"x" * 1000)
    walked = [_local(grown, "/grown"), _local(replaced, "/replaced"), _local(kept, "/kept")]
    with open(grown, "ab") as fh:
        fh.write(b"more")
    os.utime(grown, ns=(walked[0].mtime_ns, walked[0].mtime_ns))  # the same time: the size tells
    replaced.unlink()
    replaced.write_bytes(b"y" * 1000)  # another inode under the name
    out = driver.copy_local_batch(walked, "crc32c")
    assert out is not None and out[0] is None and out[1] is None and out[2] is not None
    assert driver.store.head("grown") is None and driver.store.head("replaced") is None


def test_a_put_counts_only_when_the_store_s_answer_names_the_bytes() -> None:
    data = os.urandom(100)
    crc = crc32c.crc32c(data)
    right = base64.b64encode(crc.to_bytes(4, "big")).decode()
    wrong = base64.b64encode((crc ^ 1).to_bytes(4, "big")).decode()
    assert confirmed({"ETag": f'"{hashlib.md5(data).hexdigest()}"'}, data, crc)
    assert confirmed({"ETag": '"0123456789abcdef0123456789abcdef"', "ChecksumCRC32C": right}, data, crc)
    assert not confirmed({"ETag": '"0123456789abcdef0123456789abcdef"'}, data, crc)
    assert not confirmed({"ETag": '"kms-encrypted"', "ChecksumCRC32C": wrong}, data, crc)


def test_directories_made_together_never_refuse_a_parent_its_child_made_exist(driver, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # A parent slow to be looked at: made at the same time as its child, it
    # would find the prefix the child's marker made and be refused as existing.
    real = driver._is_prefix

    def slow_parent(path: str) -> bool:
        if path.rstrip("/") == "/p":
            time.sleep(0.5)
        return bool(real(path))

    monkeypatch.setattr(driver, "_is_prefix", slow_parent)
    made = driver.mkdirs(["/p", "/p/c", "/p/c/g", "/q"])
    assert made == [None, None, None, None]
    assert all(driver.stat(p).is_dir for p in ("/p", "/p/c", "/p/c/g", "/q"))
