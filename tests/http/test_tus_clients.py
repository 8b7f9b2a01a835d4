"""tuspy against the real ``serve-http`` process: into posix and into the HPSS emulator, across a SIGKILL."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from tusclient import client
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

MiB = 1 << 20


def data(tmp_path: Path, size: int) -> Path:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(size))
    return src


def hpss_bytes(path: str) -> bytes:
    from transfercore_hpss.driver import HpssDriver

    driver = HpssDriver(options={"block": MiB, "segment": MiB})
    with driver.open_read(path) as reader:
        return reader.read(0, reader.size)


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


def test_tuspy_uploads_into_hpss_and_resumes_after_a_kill(
    tmp_path: Path, serve_http, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = tmp_path / "hpss"
    emu.mkdir()
    env = {"HPSS_EMU_ROOT": str(emu)}
    server = serve_http("--driver", "hpss:///?block=256KiB&segment=256KiB", env=env)
    src = data(tmp_path, 12 * MiB + 7)
    uploader = client.TusClient(f"{server.base}/files/").uploader(
        str(src), chunk_size=MiB, metadata={"filename": "h.bin"})
    for _ in range(3):
        uploader.upload_chunk()
    acked = uploader.offset
    server.kill()
    server.start()
    head = server.request("HEAD", uploader.url[len(server.base):], {"Tus-Resumable": "1.0.0"})
    assert int(head.headers["upload-offset"]) == acked  # acknowledged offsets were durable in HPSS
    client.TusClient(f"{server.base}/files/").uploader(str(src), url=uploader.url, chunk_size=8 * MiB).upload()
    monkeypatch.setenv("HPSS_EMU_ROOT", str(emu))
    assert hpss_bytes("/h.bin") == src.read_bytes()
