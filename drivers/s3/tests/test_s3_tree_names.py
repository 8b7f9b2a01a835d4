"""Keys that no file or directory of a tree can be named after: a tree copy
says so and stops, instead of leaving them out or merging them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from transfercore_s3.driver import S3Driver
from transfercore_s3.seaweed import SeaweedS3

from transfercore.errors import StorageError


class Listed:
    """A stand-in for the driver's store that answers one listing: the keys
    SeaweedFS itself cannot hold (it merges ``a//b`` into ``a/b`` and drops a
    marker's bytes), which AWS S3 keeps."""

    def __init__(self, pages: dict[str, dict[str, Any]]) -> None:
        self._pages = pages

    def check_bucket(self) -> None:
        pass

    def pages(self, prefix: str, **_: Any) -> Any:
        yield self._pages[prefix]

    def close(self) -> None:
        pass


def _driver(pages: dict[str, dict[str, Any]]) -> S3Driver:
    driver = S3Driver("bucket", {"endpoint": "http://127.0.0.1:9"})
    driver.store = Listed(pages)  # type: ignore[assignment]
    return driver


def _object(key: str, size: int = 1) -> dict[str, Any]:
    return {"Key": key, "Size": size, "ETag": '"e"'}


@pytest.mark.parametrize(
    ("listing", "said"),
    [
        ({"CommonPrefixes": [{"Prefix": "t/a//"}]}, "empty"),  # the key t/a//b, listed below t/a/
        ({"CommonPrefixes": [{"Prefix": "t/a/./"}]}, "'.'"),  # t/a/./c
        ({"Contents": [_object("t/a/..")]}, "'..'"),
        ({"Contents": [_object("t/a/x")], "CommonPrefixes": [{"Prefix": "t/a/x/"}]}, "both an object and a prefix"),
    ],
)
def test_a_key_no_path_can_name_stops_the_tree_listing_and_is_named(listing: dict[str, Any], said: str) -> None:
    driver = _driver({"t/a/": listing})
    with pytest.raises(StorageError) as refused:
        list(driver.scan("/t/a"))
    assert said in str(refused.value) and "s3://bucket/t/" in str(refused.value)
    # a listing shown to a client is not a tree copy: it still lists what it can
    assert list(driver.list("/t/a"))


def test_a_directory_marker_with_bytes_is_said_and_an_empty_one_is_the_directory() -> None:
    with pytest.raises(StorageError, match="holds 7 bytes"):
        list(_driver({"t/d/": {"Contents": [_object("t/d/", 7), _object("t/d/f")]}}).scan("/t/d"))
    listed = list(_driver({"t/d/": {"Contents": [_object("t/d/", 0), _object("t/d/f")]}}).scan("/t/d"))
    assert [i.path for i in listed] == ["/t/d/f"]


def test_an_object_that_is_also_a_prefix_stops_the_copy_from_a_real_store(
    seaweed: SeaweedS3, bucket: str, s3env: dict[str, str], tmp_path: Path
) -> None:
    client = seaweed.client()
    client.put_object(Bucket=bucket, Key="t/x", Body=b"file x")
    client.put_object(Bucket=bucket, Key="t/x/child", Body=b"child")
    client.put_object(Bucket=bucket, Key="t/y", Body=b"y")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "transfercore", "copy", "-r", f"s3://{bucket}/t?endpoint={seaweed.endpoint}", str(out)],
        capture_output=True, text=True, env=s3env, timeout=120, check=False,
    )
    # (before: "x/child" failed with "the directory ... does not exist", a cause it was not)
    assert done.returncode != 0
    assert f"s3://{bucket}/t/x cannot be copied as part of a tree: it is both an object and a prefix" in done.stderr
    assert not (out / "x").exists()
