"""What the store keeps of an unfinished upload when the server itself stops or crashes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from transfercore_s3.seaweed import SeaweedS3

from transfercore import RangeSet
from transfercore.registry import open_location

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
