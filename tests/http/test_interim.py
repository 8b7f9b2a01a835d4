"""The draft's ``104 Upload Resumption Supported``, sent by serve-http's own server before a creation's body."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

MiB = 1 << 20
DRAFT = {"Upload-Draft-Interop-Version": "8"}


def test_curl_shows_the_104_then_the_final_reply(tmp_path: Path, serve_http) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = serve_http("--root", str(root))
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 * MiB + 7))
    run = subprocess.run(
        ["curl", "-sS", "-v", "-o", os.devnull, "-H", "Expect:", "-H", "Upload-Draft-Interop-Version: 8",
         "-H", "Upload-Complete: ?1", "--data-binary", f"@{src}", server.base + "/files/c.bin"],
        capture_output=True, check=True, timeout=60,
    )
    received = [line[2:].strip() for line in run.stderr.decode("latin-1").splitlines() if line.startswith("< ")]
    statuses = [(i, line) for i, line in enumerate(received) if line.startswith("HTTP/1.1 ")]
    assert [line for _, line in statuses] == ["HTTP/1.1 104 Upload Resumption Supported", "HTTP/1.1 201 Created"]
    interim = dict(line.split(": ", 1) for line in received[1:statuses[1][0]] if ": " in line)
    final = dict(line.split(": ", 1) for line in received[statuses[1][0] + 1:] if ": " in line)
    assert interim["location"].startswith("/uploads/")
    assert interim["location"] == final["location"]
    assert interim["upload-draft-interop-version"] == "8"
    assert final["upload-complete"] == "?1"
    assert (root / "c.bin").read_bytes() == src.read_bytes()


def test_the_104_comes_before_the_body_is_sent(tmp_path: Path, serve_http, raw) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = serve_http("--root", str(root))
    body = os.urandom(100_000)
    with raw(server.port) as conn:
        conn.send(raw.request("POST", "/files/r.bin", DRAFT | {"Upload-Complete": "?1",
                                                               "Content-Length": str(len(body))}))
        interim = conn.head()  # nothing of the body sent yet: the upload exists already
        assert (interim.status, interim.reason) == (104, "Upload Resumption Supported")
        assert interim.headers["upload-draft-interop-version"] == "8"
        location = interim.headers["location"]
        assert server.request("HEAD", location).headers["upload-offset"] == "0"
        conn.send(body)
        more, final, _ = conn.final()
        assert more == [] and final.status == 201 and final.headers["location"] == location
        # the connection is kept: a second request on it
        conn.send(raw.request("HEAD", location, {}))
        assert conn.final()[1].headers["upload-complete"] == "?1"
    assert (root / "r.bin").read_bytes() == body


def test_a_creation_cut_after_the_104_is_resumed_at_its_location(tmp_path: Path, serve_http, raw, poll) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = serve_http("--root", str(root), "--sync-every", "256K")
    data = os.urandom(6 * MiB + 5)
    conn = raw(server.port)
    try:
        conn.send(raw.request("POST", "/files/cut.bin", DRAFT | {"Upload-Complete": "?1",
                                                                 "Content-Length": str(len(data))}))
        interim = conn.head()
        assert interim.status == 104
        location = interim.headers["location"]

        def durable() -> int:
            return int(server.request("HEAD", location).headers["upload-offset"])

        sent = conn.feed_until(data, lambda: durable() > 0)  # a durable offset inside the creation
    finally:
        conn.close()  # the client is cut mid-body: no final reply, only the 104's Location

    def appendable() -> bool:  # the cut request has ended on the server (an empty append passes)
        r = server.request("PATCH", location, {"Upload-Offset": str(durable()), "Upload-Complete": "?0",
                                               "Content-Type": "application/partial-upload"}, body=b"")
        return r.status == 204

    poll(appendable, what="the cut creation to end")
    head = server.request("HEAD", location)
    at = int(head.headers["upload-offset"])
    assert head.status == 204 and head.headers["upload-complete"] == "?0"
    assert 0 < at <= sent
    assert not (root / "cut.bin").exists()
    r = server.request("PATCH", location, {"Upload-Offset": str(at), "Upload-Complete": "?1",
                                           "Content-Type": "application/partial-upload"}, body=data[at:])
    assert r.status == 200 and r.headers["upload-complete"] == "?1"
    assert (root / "cut.bin").read_bytes() == data


def test_no_104_for_tus_for_clients_without_the_interop_version_nor_for_http_1_0(
    tmp_path: Path, serve_http, raw
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = serve_http("--root", str(root))
    cases = [
        ("POST", "/files/", {"Tus-Resumable": "1.0.0", "Upload-Length": "3", "Upload-Metadata": "filename dA==",
                             "Content-Type": "application/offset+octet-stream", "Content-Length": "3"}, "1.1"),
        ("POST", "/files/n", {"Upload-Complete": "?1", "Content-Length": "3"}, "1.1"),
        ("POST", "/files/o", {"Upload-Complete": "?1", "Upload-Draft-Interop-Version": "7", "Content-Length": "3"},
         "1.1"),
        ("POST", "/files/h", DRAFT | {"Upload-Complete": "?1", "Content-Length": "3"}, "1.0"),
    ]
    for method, path, headers, version in cases:
        with raw(server.port) as conn:
            conn.send(raw.request(method, path, headers, version) + b"abc")
            interim, final, _ = conn.final()
            assert interim == [] and final.status == 201, (path, final)
    # a creation without content has nothing to resume: its 201 says where the upload is
    with raw(server.port) as conn:
        conn.send(raw.request("POST", "/files/e", DRAFT | {"Upload-Complete": "?0", "Upload-Length": "3",
                                                           "Content-Length": "0"}))
        interim, final, _ = conn.final()
        assert interim == [] and final.status == 201
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == ["h", "n", "o", "t"]


def test_under_uvicorn_the_app_sends_no_104_and_still_serves(tmp_path: Path, serve_http, raw) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = serve_http("--root", str(root), "--http-server", "uvicorn")
    with raw(server.port) as conn:
        conn.send(raw.request("POST", "/files/u", DRAFT | {"Upload-Complete": "?1", "Content-Length": "5"}) + b"hello")
        interim, final, _ = conn.final()
    assert interim == [] and final.status == 201 and final.headers["location"].startswith("/uploads/")
    assert "uvicorn" in final.headers.get("server", "")  # the test ran where it says
    assert (root / "u").read_bytes() == b"hello"
