from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from transfercore_s3.seaweed import SeaweedS3


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """One SeaweedFS S3 gateway for the session (it takes seconds to start)."""
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed"))
    server.start()
    try:
        yield server
    finally:
        # the data is the test's own and thrown away: no need to wait for a clean stop
        server.kill()


@pytest.fixture
def bucket(seaweed: SeaweedS3) -> str:
    """A new, empty bucket for one test."""
    name = f"test-{secrets.token_hex(6)}"
    seaweed.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3env(seaweed: SeaweedS3, tmp_path: Path) -> dict[str, str]:
    """The environment of a `transfercore` subprocess: the server's credentials, a state directory of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= seaweed.env()
    env["AWS_CONFIG_FILE"] = str(tmp_path / "no-aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-aws-credentials")
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    return env
