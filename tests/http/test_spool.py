"""A destination that cannot resume a write (restart model none): uploads go through a durable spool.

The mock driver with ``model=none`` makes nothing durable before ``complete``
(its ``dir`` keeps its store across the server's restarts).  Every offset the
server reports is the spool's durable prefix, never the whole length before
the object is stored, and the object appears only once whole.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
from pathlib import Path

from tusclient import client

from transfercore.errors import NotFound
from transfercore.testing.throttle import Throttle

MiB = 1 << 20


def mock_bytes(store: Path, path: str) -> bytes | None:
    from transfercore_mock.driver import MockDriver

    driver = MockDriver("spooled", {"model": "none", "dir": str(store)})
    try:
        with driver.open_read(path) as reader:
            return reader.read(0, reader.size)
    except NotFound:
        return None


def test_tuspy_uploads_through_the_spool_across_a_kill(tmp_path: Path, serve_http, poll, recorded_offsets) -> None:
    store = tmp_path / "mock-store"
    store.mkdir()
    server = serve_http("--driver", f"mock://spooled/?model=none&dir={store}", "--sync-every", "1M")
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(24 * MiB + 5))
    uploader = client.TusClient(f"{server.base}/files/").uploader(
        str(src), chunk_size=4 * MiB, metadata={"filename": "s.bin"}, retries=300, retry_delay=0.1)
    failed: list[BaseException] = []

    def upload() -> None:
        try:
            uploader.upload()
        except BaseException as exc:  # reported by the test thread
            failed.append(exc)

    assert server.proc is not None
    # Slowed, the server is still short of the whole upload when the test sees 8 MiB pass: at full
    # speed a test delayed on a busy machine could see it only after the upload was complete.
    throttle = Throttle(server.proc.pid, duty=0.25, period=0.05)
    thread = threading.Thread(target=upload, daemon=True)
    thread.start()
    try:
        # the offsets advance (spooled durably) although the destination keeps nothing before complete()
        poll(lambda: any(o > 8 * MiB for o in recorded_offsets(server.state)) or bool(failed), timeout=120,
             what="the spooled offset to pass 8 MiB")
    finally:
        throttle.close()  # lets it run on (SIGCONT): stopped again at once, then killed where it stands
        os.kill(server.proc.pid, signal.SIGSTOP)
    server.kill()
    (kept,) = recorded_offsets(server.state)
    assert mock_bytes(store, "/s.bin") is None
    server.start()
    head = server.request("HEAD", uploader.url[len(server.base):], {"Tus-Resumable": "1.0.0"})
    assert head.status == 200 and kept <= int(head.headers["upload-offset"]) < src.stat().st_size
    thread.join(120)
    assert not thread.is_alive() and not failed, failed
    stored = mock_bytes(store, "/s.bin")
    assert stored is not None and hashlib.sha256(stored).digest() == hashlib.sha256(src.read_bytes()).digest()
    assert not list((server.state / "spool").iterdir())  # the spool is gone once the object is stored


def test_a_spooled_upload_never_reports_its_whole_length_before_it_is_stored(tmp_path: Path, serve_http) -> None:
    store = tmp_path / "mock-store"
    store.mkdir()
    server = serve_http("--driver", f"mock://spooled/?model=none&dir={store}")
    data = os.urandom(100_000)
    # the draft: every byte in the creation request, but Upload-Complete: ?0
    r = server.request("POST", "/files/d.bin", {"Upload-Complete": "?0", "Upload-Length": str(len(data))}, data)
    assert r.status == 201 and r.headers["upload-complete"] == "?0"
    assert int(r.headers["upload-offset"]) == len(data) - 1  # stored only by a request that completes
    location = r.headers["location"]
    head = server.request("HEAD", location)
    assert int(head.headers["upload-offset"]) == len(data) - 1 and head.headers["upload-complete"] == "?0"
    assert mock_bytes(store, "/d.bin") is None
    r = server.request("PATCH", location, {"Upload-Offset": str(len(data)), "Upload-Complete": "?1",
                                           "Content-Type": "application/partial-upload"}, b"")
    assert r.status == 409  # the offset is len - 1: the client resends the last byte
    r = server.request("PATCH", location, {"Upload-Offset": str(len(data) - 1), "Upload-Complete": "?1",
                                           "Content-Type": "application/partial-upload"}, data[-1:])
    assert r.status == 200 and r.headers["upload-complete"] == "?1" and int(r.headers["upload-offset"]) == len(data)
    assert mock_bytes(store, "/d.bin") == data


def test_repr_digest_is_checked_on_the_spooled_bytes(tmp_path: Path, serve_http) -> None:
    import base64

    store = tmp_path / "mock-store"
    store.mkdir()
    server = serve_http("--driver", f"mock://spooled/?model=none&dir={store}")
    data = os.urandom(300_000)
    right = "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"
    wrong = "sha-256=:" + base64.b64encode(hashlib.sha256(b"other").digest()).decode() + ":"
    r = server.request("POST", "/files/bad.bin", {"Upload-Complete": "?1", "Repr-Digest": wrong}, data)
    assert r.status == 400 and b"digest-mismatch" in r.body
    assert mock_bytes(store, "/bad.bin") is None
    r = server.request("POST", "/files/good.bin", {"Upload-Complete": "?1", "Repr-Digest": right}, data)
    assert r.status == 201 and r.headers["upload-complete"] == "?1"
    assert mock_bytes(store, "/good.bin") == data
    assert not list((server.state / "spool").iterdir())  # both spools gone: one refused, one stored


def test_a_stored_spool_leaves_nothing_behind(tmp_path: Path) -> None:
    from transfercore_mock.driver import MockDriver

    from transfercore.http.storage import SpoolStorage

    driver = MockDriver("leftovers", {"model": "none", "dir": str(tmp_path / "store")})
    spools = SpoolStorage(driver, tmp_path / "spool")
    upload = "u" * 20
    writer = spools.open(upload, "/x.bin", 10, 0)
    writer.write(0, b"01234")
    assert writer.durable().prefix_end() == 5 and spools.held(upload, "/x.bin") == 5
    # a server killed while saving the spool's record leaves its temporary file
    (tmp_path / "spool" / f".{upload}.durable.1234.tmp").write_text("{}")
    writer.close()
    writer = spools.open(upload, "/x.bin", 10, 5)
    writer.write(5, b"56789")
    writer.complete()
    assert list((tmp_path / "spool").iterdir()) == []
    with driver.open_read("/x.bin") as reader:
        assert reader.read(0, 10) == b"0123456789"
