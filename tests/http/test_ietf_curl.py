"""The IETF resumable-upload draft (interop version 8) driven by curl against the real server."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

MiB = 1 << 20
HEAD_FIELDS = ("upload-offset", "upload-complete", "upload-length", "upload-limit", "cache-control")


def curl(*args: str, data: Path | None = None) -> tuple[int, dict[str, str], bytes]:
    cmd = ["curl", "-sS", "-i", "-H", "Expect:", "-H", "Upload-Draft-Interop-Version: 8", *args]
    if data is not None:
        cmd += ["--data-binary", f"@{data}"]
    out = subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    while head.split(b" ")[1].startswith(b"1"):  # interim replies (the 104 of a creation) come first
        head, _, body = body.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def digest(data: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"


def head(server: Any, location: str) -> dict[str, str]:
    status, headers, _ = curl("-I", server.base + location)
    assert status == 204
    return headers


def offset(server: Any, location: str) -> int:
    return int(head(server, location)["upload-offset"])


def slow_patch(server: Any, location: str, src: Path, at: int, rate: str) -> subprocess.Popen[bytes]:
    rest = src.with_suffix(".rest")
    rest.write_bytes(src.read_bytes()[at:])
    return subprocess.Popen(
        ["curl", "-sS", "-o", os.devnull, "-X", "PATCH", "--limit-rate", rate, "-H", "Expect:",
         "-H", "Upload-Complete: ?1", "-H", f"Upload-Offset: {at}",
         "-H", "Content-Type: application/partial-upload", "--data-binary", f"@{rest}", server.base + location],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def setup(tmp_path: Path, serve_http) -> tuple[Any, Path, Path]:
    root = tmp_path / "root"
    root.mkdir()
    server = serve_http("--root", str(root), "--sync-every", "256K", "--max-size", "64M")
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(6 * MiB + 5))
    return server, root, src


def test_options_announce_partial_upload_and_limits(setup) -> None:
    server, _, _ = setup
    status, h, _ = curl("-X", "OPTIONS", server.base + "/files/x")
    assert status == 204
    assert "application/partial-upload" in h["accept-patch"]
    assert h["upload-limit"] == f"max-size={64 * MiB}"


def test_create_interrupt_head_resume_complete_with_digest(setup, tmp_path: Path, poll) -> None:
    server, root, src = setup
    data = src.read_bytes()
    first = tmp_path / "first"
    first.write_bytes(data[:MiB])
    status, h, _ = curl("-X", "POST", "-H", "Upload-Complete: ?0", "-H", f"Upload-Length: {len(data)}",
                        "-H", f"Repr-Digest: {digest(data)}", server.base + "/files/out.bin", data=first)
    assert status == 201 and h["upload-complete"] == "?0" and h["upload-offset"] == str(MiB)
    assert h["upload-limit"].startswith(f"max-size={64 * MiB}, max-age=")
    location = h["location"]
    assert location.startswith("/uploads/")
    hd = head(server, location)
    assert all(name in hd for name in HEAD_FIELDS)
    assert (hd["upload-offset"], hd["upload-complete"], hd["upload-length"], hd["cache-control"]) == (
        str(MiB), "?0", str(len(data)), "no-store")
    assert hd["upload-limit"].startswith(f"max-size={64 * MiB}, max-age=")

    # the append is interrupted by the client mid-body: the server keeps its durable part
    curl_proc = slow_patch(server, location, src, MiB, "2M")
    try:
        poll(lambda: offset(server, location) > MiB, what="a durable offset past the first part")
    finally:
        curl_proc.kill()
        curl_proc.wait(10)

    def appendable() -> bool:  # the interrupted request has ended on the server (an empty append passes)
        at = offset(server, location)
        status, _, _ = curl("-X", "PATCH", "-H", "Upload-Complete: ?0", "-H", f"Upload-Offset: {at}",
                            "-H", "Content-Type: application/partial-upload", "--data-binary", "",
                            server.base + location)
        return status == 204

    poll(appendable, what="the interrupted append to end")
    at = offset(server, location)
    assert MiB < at < len(data)
    assert not (root / "out.bin").exists()

    # a wrong offset: 409, the right offset, the problem body
    status, h, body = curl("-X", "PATCH", "-H", "Upload-Complete: ?0", "-H", f"Upload-Offset: {at + 1}",
                           "-H", "Content-Type: application/partial-upload", "--data-binary", "x",
                           server.base + location)
    assert status == 409 and h["upload-offset"] == str(at)
    assert h["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["type"] == "https://iana.org/assignments/http-problem-types#mismatching-upload-offset"
    assert problem["status"] == 409

    rest = tmp_path / "rest"
    rest.write_bytes(data[at:])
    status, h, body = curl("-X", "PATCH", "-H", "Upload-Complete: ?1", "-H", f"Upload-Offset: {at}",
                           "-H", "Content-Type: application/partial-upload", server.base + location, data=rest)
    assert status == 200 and h["upload-complete"] == "?1"
    assert json.loads(body) == {"path": "/out.bin", "size": len(data)}
    assert (root / "out.bin").read_bytes() == data
    hd = head(server, location)
    assert (hd["upload-complete"], hd["upload-offset"]) == ("?1", str(len(data)))
    # nothing more can be appended to a complete upload
    status, h, _ = curl("-X", "PATCH", "-H", "Upload-Complete: ?1", "-H", f"Upload-Offset: {len(data)}",
                        "-H", "Content-Type: application/partial-upload", "--data-binary", "",
                        server.base + location)
    assert status == 410 and h["upload-complete"] == "?1"


def test_server_killed_mid_append_keeps_every_reported_offset(setup, tmp_path: Path, poll) -> None:
    server, root, src = setup
    data = src.read_bytes()
    status, h, _ = curl("-X", "POST", "-H", "Upload-Complete: ?0", "-H", f"Upload-Length: {len(data)}",
                        "--data-binary", "", server.base + "/files/cut.bin")
    assert status == 201 and h["upload-offset"] == "0"
    location = h["location"]
    curl_proc = slow_patch(server, location, src, 0, "3M")
    seen: list[int] = []
    try:
        poll(lambda: seen.append(offset(server, location)) or seen[-1] >= MiB, what="1 MiB durable")
        server.kill()
    finally:
        curl_proc.wait(20)
    server.start()
    after = offset(server, location)
    assert after >= max(seen)  # every offset reported before the kill survived it
    rest = tmp_path / "rest"
    rest.write_bytes(data[after:])
    status, h, _ = curl("-X", "PATCH", "-H", "Upload-Complete: ?1", "-H", f"Upload-Offset: {after}",
                        "-H", "Content-Type: application/partial-upload", server.base + location, data=rest)
    assert status == 200 and h["upload-complete"] == "?1"
    assert (root / "cut.bin").read_bytes() == data


def test_digest_mismatch_publishes_nothing(setup, tmp_path: Path) -> None:
    server, root, src = setup
    status, h, body = curl("-X", "POST", "-H", "Upload-Complete: ?1", "-H", f"Repr-Digest: {digest(b'other')}",
                           server.base + "/files/bad.bin", data=src)
    assert status == 400 and json.loads(body)["code"] == "digest-mismatch"
    assert list(root.iterdir()) == []


def test_delete_cancels(setup) -> None:
    server, root, _ = setup
    status, h, _ = curl("-X", "POST", "-H", "Upload-Complete: ?0", "-H", "Upload-Length: 10",
                        "--data-binary", "12345", server.base + "/files/c.bin")
    assert status == 201
    status, _, _ = curl("-X", "DELETE", server.base + h["location"])
    assert status == 204
    status, _, _ = curl("-I", server.base + h["location"])
    assert status == 404
    assert list(root.iterdir()) == []
