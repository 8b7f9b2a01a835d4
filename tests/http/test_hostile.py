"""Hostile and careless clients against the real server: a clear error each, others keep being served."""

from __future__ import annotations

import base64
import json
import select
import socket
from pathlib import Path

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}


def meta(name: bytes) -> str:
    return "filename " + base64.b64encode(name).decode()


def still_serving(server) -> None:
    assert server.request("OPTIONS", "/files/").status == 204


def create(server, name: bytes, length: int, **extra: str) -> str:
    r = server.request("POST", "/files/", TUS | {"Upload-Length": str(length), "Upload-Metadata": meta(name)}
                       | extra)
    assert r.status == 201, r.body
    return r.headers["location"]


def test_body_longer_than_upload_length(tmp_path: Path, serve_http) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = serve_http("--root", str(root))
    r = server.request("POST", "/files/", TUS | OCTETS | {"Upload-Length": "10", "Upload-Metadata": meta(b"a")},
                       body=b"x" * 20)
    assert r.status == 413
    assert json.loads(r.body)["type"].endswith("#inconsistent-upload-length")
    assert not (root / "a").exists()
    location = create(server, b"b", 10)
    r = server.request("PATCH", location, TUS | OCTETS | {"Upload-Offset": "0"}, body=b"y" * 4096)
    assert r.status == 413 and not (root / "b").exists()
    still_serving(server)


def test_absurd_lengths(tmp_path: Path, serve_http) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = serve_http("--root", str(root), "--max-size", "1G")
    r = server.request("POST", "/files/", TUS | {"Upload-Length": str(10**14), "Upload-Metadata": meta(b"a")})
    assert r.status == 413 and r.headers["upload-limit"] == f"max-size={1 << 30}"
    r = server.request("POST", "/files/x", {"Upload-Complete": "?0", "Upload-Length": "9" * 40})
    assert r.status == 400 and json.loads(r.body)["code"] == "bad-header"
    r = server.request("POST", "/files/x", {"Upload-Complete": "?0", "Upload-Length": "-5"})
    assert r.status == 400
    assert list(root.iterdir()) == []
    still_serving(server)


def test_one_mebibyte_of_headers(tmp_path: Path, serve_http) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = serve_http("--root", str(root), "--max-header-size", "16K")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        head = b"POST /files/x HTTP/1.1\r\nHost: x\r\nUpload-Complete: ?1\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
        try:
            s.sendall(head)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection before reading it all: also a refusal
        reply = b""
        try:
            while chunk := s.recv(65536):
                reply += chunk
        except ConnectionResetError:
            pass
    assert reply == b"" or reply.split(b" ")[1] in (b"400", b"431")
    assert list(root.iterdir()) == []
    still_serving(server)


def test_path_escapes(tmp_path: Path, serve_http) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    server = serve_http("--root", str(root))
    for name in (b"../../etc/passwd", b"../outside/x", b"a/../../x", b"..", b".tcpart"):
        r = server.request("POST", "/files/", TUS | {"Upload-Length": "1", "Upload-Metadata": meta(name)})
        assert r.status == 403, name
        assert json.loads(r.body)["status"] == 403
    r = server.request("POST", "/files/../../outside/x", {"Upload-Complete": "?1"}, body=b"z")
    assert r.status == 403
    r = server.request("POST", "/files/link/x", {"Upload-Complete": "?1"}, body=b"z")
    assert r.status == 403  # the posix driver refuses a symbolic link that leaves the root
    assert list(outside.iterdir()) == [] and sorted(p.name for p in root.iterdir()) == ["link"]
    still_serving(server)


def test_tokens_and_owners(tmp_path: Path, serve_http) -> None:
    root = tmp_path / "root"
    root.mkdir()
    alice, bob = "a" * 20, "b" * 20
    server = serve_http("--root", str(root), "--token", f"alice:{alice}", "--token", f"bob:{bob}")
    r = server.request("POST", "/files/x", {"Upload-Complete": "?0", "Upload-Length": "4"})
    assert r.status == 401 and r.headers["www-authenticate"] == "Bearer"
    r = server.request("POST", "/files/x", {"Upload-Complete": "?0", "Upload-Length": "4",
                                            "Authorization": f"Bearer {alice}"})
    assert r.status == 201
    location = r.headers["location"]
    assert server.request("HEAD", location, {"Authorization": f"Bearer {bob}"}).status == 404
    assert server.request("DELETE", location, {"Authorization": f"Bearer {bob}"}).status == 404
    r = server.request("PATCH", location, {"Authorization": f"Bearer {alice}", "Upload-Offset": "0",
                                           "Upload-Complete": "?1", "Content-Type": "application/partial-upload"},
                       body=b"data")
    assert r.status == 200 and (root / "x").read_bytes() == b"data"


def test_concurrent_append_and_slow_client(tmp_path: Path, serve_http, poll) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = serve_http("--root", str(root), "--body-timeout", "3")  # wide enough to see the hold on a loaded machine
    location = create(server, b"s", 1000)
    # a client that sends one byte, then nothing: it holds the upload until the body timeout
    def slow_client() -> socket.socket:
        # a probe may hold the upload for a moment as the slow request arrives (that one is
        # then refused, 423, as designed): start it again until it is the one holding
        for _attempt in range(5):
            conn = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            conn.sendall(f"PATCH {location} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
                         "Content-Type: application/offset+octet-stream\r\nContent-Length: 1000\r\n\r\nA".encode())
            answered: list[bool] = []

            def busy(conn: socket.socket = conn, answered: list[bool] = answered) -> bool:
                # a probe at a wrong offset: 409 while free (nothing written), 423 while held
                if select.select([conn], [], [], 0)[0]:
                    answered.append(True)  # the slow request itself was refused
                    return True
                r = server.request("PATCH", location, TUS | OCTETS | {"Upload-Offset": "999"}, body=b"")
                assert r.status in (409, 423)
                return r.status == 423

            poll(busy, what="the slow request to hold the upload")
            if not answered:
                return conn
            conn.close()
        raise AssertionError("the slow request never held the upload in 5 attempts")

    s = slow_client()
    try:
        still_serving(server)  # others are served meanwhile

        def released() -> bool:
            return server.request("HEAD", location, TUS).headers.get("upload-offset") == "1"

        poll(released, timeout=15, what="the body timeout to keep the durable byte")
    finally:
        s.close()
    answers: list[int] = []

    def appended() -> bool:
        # the timed-out request records its byte, then closes its writer and lets the upload go:
        # until then another append is refused (423) and writes nothing
        answers.append(server.request("PATCH", location, TUS | OCTETS | {"Upload-Offset": "1"},
                                      body=b"C" * 999).status)
        return answers[-1] != 423

    poll(appended, what="the upload to be free again")
    assert answers[-1] == 204 and (root / "s").read_bytes() == b"A" + b"C" * 999


def test_idle_connections_do_not_stop_service(tmp_path: Path, serve_http) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = serve_http("--root", str(root))
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(500)]
    try:
        still_serving(server)
        location = create(server, b"i", 3)
        assert server.request("PATCH", location, TUS | OCTETS | {"Upload-Offset": "0"}, body=b"abc").status == 204
        assert (root / "i").read_bytes() == b"abc"
    finally:
        for s in idle:
            s.close()


def test_abandoned_uploads_expire(tmp_path: Path, serve_http, poll) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = serve_http("--root", str(root), "--expiry", "0.0003")  # about a second
    location = create(server, b"e", 10)
    assert server.request("PATCH", location, TUS | OCTETS | {"Upload-Offset": "0"}, body=b"12345").status == 204
    assert any(p.name.startswith(".e") for p in root.iterdir())
    poll(lambda: server.request("HEAD", location, TUS).status == 404, what="the upload to expire")
    assert list(root.iterdir()) == []  # its partial data went with it


def test_missing_directory_and_both_protocols_on_one_upload(tmp_path: Path, serve_http) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = serve_http("--root", str(root))
    r = server.request("POST", "/files/nodir/x", {"Upload-Complete": "?1"}, body=b"abc")
    assert r.status == 404 and "does not exist" in json.loads(r.body)["detail"]
    location = create(server, b"m.bin", 6)  # created with tus ...
    r = server.request("HEAD", location)  # ... seen and finished through the draft
    assert (r.status, r.headers["upload-offset"], r.headers["upload-complete"]) == (204, "0", "?0")
    r = server.request("PATCH", location, {"Upload-Offset": "0", "Upload-Complete": "?1",
                                           "Content-Type": "application/partial-upload"}, body=b"abcdef")
    assert r.status == 200 and r.headers["upload-complete"] == "?1"
    assert (root / "m.bin").read_bytes() == b"abcdef"


def test_a_digest_the_storage_cannot_check_is_refused_before_any_byte(tmp_path: Path, serve_http) -> None:
    server = serve_http("--driver", "mock:///?read_back=false")
    r = server.request("POST", "/files/x", {"Upload-Complete": "?1", "Repr-Digest": "sha-256=:" + "A" * 43 + "=:"},
                       body=b"abc")
    assert r.status == 400 and json.loads(r.body)["code"] == "digest-unsupported"
    r = server.request("POST", "/files/x", {"Upload-Complete": "?1"}, body=b"abc")
    assert r.status == 201 and r.headers["upload-complete"] == "?1"
