"""tuspy against the real ``serve-http`` process: into posix and into the HPSS emulator, across SIGKILLs."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest
from tusclient import client
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

MiB = 1 << 20


def data(tmp_path: Path, size: int) -> Path:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(size))
    return src


def test_tuspy_uploads_into_posix_with_checksums(tmp_path: Path, serve_http) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = serve_http("--root", str(root))
    src = data(tmp_path, 24 * MiB + 123)
    uploader = client.TusClient(f"{server.base}/files/").uploader(
        str(src), chunk_size=4 * MiB, metadata={"filename": "big.bin"}, upload_checksum=True
    )
    uploader.upload()
    assert (root / "big.bin").read_bytes() == src.read_bytes()
    assert [p.name for p in root.iterdir()] == ["big.bin"]  # no partial left beside it


def test_tuspy_resumes_after_the_server_is_killed(tmp_path: Path, serve_http) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = serve_http("--root", str(root))
    src = data(tmp_path, 16 * MiB)
    tus = client.TusClient(f"{server.base}/files/")
    uploader = tus.uploader(str(src), chunk_size=MiB, metadata={"filename": "k.bin"})
    for _ in range(5):
        uploader.upload_chunk()
    acked = uploader.offset
    assert acked == 5 * MiB
    server.kill()
    assert not (root / "k.bin").exists()
    with pytest.raises((TusCommunicationError, TusUploadFailed, OSError)):
        uploader.upload_chunk()
    server.start()
    # A new client resumes from the URL: the server's offset after the restart is every acknowledged byte.
    head = server.request("HEAD", uploader.url[len(server.base):], {"Tus-Resumable": "1.0.0"})
    assert head.status == 200 and int(head.headers["upload-offset"]) == acked
    resumed = client.TusClient(f"{server.base}/files/").uploader(str(src), url=uploader.url, chunk_size=4 * MiB)
    assert resumed.offset == acked
    resumed.upload()
    assert hashlib.sha256((root / "k.bin").read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()


def test_tuspy_uploads_256_mib_across_a_kill_mid_request(
    serve_http, poll, big_source, destination, recorded_offsets
) -> None:
    """256 MiB into posix or HPSS; the server is SIGKILLed while a 64 MiB request is half through."""
    server = serve_http(*destination.args, env=destination.env)
    chunk = 64 * MiB
    uploader = client.TusClient(f"{server.base}/files/").uploader(
        str(big_source.path), chunk_size=chunk, metadata={"filename": "big.bin"},
        retries=300, retry_delay=0.1,  # its own retries carry it across the restart (HEAD, then resume)
    )
    failed: list[BaseException] = []

    def upload() -> None:
        try:
            uploader.upload()
        except BaseException as exc:  # reported by the test thread
            failed.append(exc)

    thread = threading.Thread(target=upload, daemon=True)
    thread.start()
    # a durable point the server recorded inside a request (not at a chunk's end), past the first chunk
    poll(lambda: any(o > chunk and o % chunk for o in recorded_offsets(server.state)) or bool(failed),
         timeout=120, what="a durable point mid-request")
    assert not failed, failed
    server.kill()
    (kept,) = recorded_offsets(server.state)
    assert destination.sha256("big.bin") is None  # nothing published while incomplete
    server.start()
    head = server.request("HEAD", uploader.url[len(server.base):], {"Tus-Resumable": "1.0.0"})
    assert head.status == 200
    assert kept <= int(head.headers["upload-offset"]) < big_source.size  # the cut request's durable part kept
    thread.join(180)
    assert not thread.is_alive(), "tuspy did not finish in time"
    assert not failed, failed
    assert uploader.offset == big_source.size
    assert destination.sha256("big.bin") == big_source.sha256
