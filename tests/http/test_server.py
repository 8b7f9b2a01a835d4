"""serve-http's own HTTP/1.1 server: its limits against the real process, its ASGI side in process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from transfercore.errors import NotADirectory
from transfercore.http.server import INTERIM_RESPONSE, ApplicationStartFailed, Server, ServerLimits

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}
MiB = 1 << 20


def test_a_mebibyte_of_headers_gets_431_and_the_server_goes_on(tmp_path: Path, serve_http, raw) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = serve_http("--root", str(root), "--max-header-size", "16K")
    for size in (MiB, 24 << 10, 17 << 10):  # the smaller ones may arrive whole in one or two reads
        with raw(server.port) as conn:
            try:
                conn.send(raw.request("POST", "/files/x", {"Upload-Complete": "?1", "X-Big": "a" * size}))
            except (BrokenPipeError, ConnectionResetError):
                pass
            head = conn.head()
            assert head.status == 431 and head.headers["connection"] == "close", size
    assert server.request("OPTIONS", "/files/").status == 204
    assert list(root.iterdir()) == []
    with raw(server.port) as conn:  # under the limit: served
        conn.send(raw.request("POST", "/files/y", {"Upload-Complete": "?1", "Content-Length": "1",
                                                   "X-Big": "a" * (15 << 10)}) + b"y")
        assert conn.final()[1].status == 201


def test_slow_and_idle_connections_are_closed_after_the_header_timeout(tmp_path: Path, serve_http, raw) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = serve_http("--root", str(root), "--header-timeout", "1")
    idle = raw(server.port)
    slow = raw(server.port)
    try:
        start = time.monotonic()
        # a head sent a byte at a time, never finished (slowloris)
        head = raw.request("POST", "/files/s", {"Upload-Complete": "?1", "Content-Length": "1"})
        closed = False
        for byte in head[:-2]:
            try:
                slow.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            assert server.request("OPTIONS", "/files/").status == 204  # others are served meanwhile
            if time.monotonic() - start > 10:
                break
        assert closed or slow.closed(5)
        assert time.monotonic() - start < 10
        assert slow.buffer.startswith(b"HTTP/1.1 408 ")  # a head begun: told why
        assert idle.closed(5) and idle.buffer == b""  # nothing sent: closed quietly
    finally:
        idle.close()
        slow.close()
    assert list(root.iterdir()) == []


def test_a_stalled_body_gets_408_with_the_offset_to_resume_from(tmp_path: Path, serve_http, raw) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = serve_http("--root", str(root), "--body-timeout", "1")
    r = server.request("POST", "/files/", TUS | {"Upload-Length": "100", "Upload-Metadata": "filename YQ=="})
    location = r.headers["location"]
    with raw(server.port, timeout=15) as conn:
        conn.send(raw.request("PATCH", location, TUS | OCTETS | {"Upload-Offset": "0", "Content-Length": "100"})
                  + b"x" * 10)
        _, final, _ = conn.final()
    assert final.status == 408 and final.headers["upload-offset"] == "10"
    assert server.request("HEAD", location, TUS).headers["upload-offset"] == "10"


def test_a_refusal_with_the_body_unread_closes_after_a_reply_the_client_reads(
    tmp_path: Path, serve_http, raw
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = serve_http("--root", str(root))
    r = server.request("POST", "/files/", TUS | {"Upload-Length": str(8 * MiB), "Upload-Metadata": "filename YQ=="})
    location = r.headers["location"]
    with raw(server.port) as conn:
        # a wrong offset, and a body the server will not read: it answers at once
        conn.send(raw.request("PATCH", location, TUS | OCTETS | {"Upload-Offset": "5",
                                                                  "Content-Length": str(8 * MiB)}))
        try:
            conn.send(b"y" * (8 * MiB))
        except (BrokenPipeError, ConnectionResetError):
            pass
        _, final, _ = conn.final()
        assert final.status == 409 and final.headers["connection"] == "close"
        assert conn.closed(10)
    assert server.request("HEAD", location, TUS).headers["upload-offset"] == "0"


def test_keep_alive_and_bytes_past_content_length(tmp_path: Path, serve_http, raw) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = serve_http("--root", str(root))
    with raw(server.port) as conn:  # a whole tus upload on one connection
        conn.send(raw.request("POST", "/files/", TUS | {"Upload-Length": "6", "Upload-Metadata": "filename aw=="}))
        location = conn.final()[1].headers["location"]
        for at, part in ((0, b"abc"), (3, b"def")):
            conn.send(raw.request("PATCH", location, TUS | OCTETS | {"Upload-Offset": str(at),
                                                                      "Content-Length": "3"}) + part)
            assert conn.final()[1].status == 204
    assert (root / "k").read_bytes() == b"abcdef"
    with raw(server.port) as conn:  # more bytes than Content-Length: the rest is no request
        conn.send(raw.request("POST", "/files/m", {"Upload-Complete": "?1", "Content-Length": "3"}) + b"abcGARBAGE\r\n\r\n")
        assert conn.final()[1].status == 201
        assert conn.final()[1].status == 400
        assert conn.closed(5)
    assert (root / "m").read_bytes() == b"abc"
    assert server.request("OPTIONS", "/files/").status == 204


def test_sigterm_cuts_a_body_in_progress_and_keeps_its_durable_part(tmp_path: Path, serve_http, raw) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = serve_http("--root", str(root), "--sync-every", "256K")
    data = os.urandom(4 * MiB)
    conn = raw(server.port)
    try:
        conn.send(raw.request("POST", "/files/t", {"Upload-Draft-Interop-Version": "8", "Upload-Complete": "?1",
                                                   "Content-Length": str(len(data))}))
        location = conn.head().headers["location"]
        sent = conn.feed_until(data, lambda: server.request("HEAD", location).headers["upload-offset"] != "0")
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(15) == 0
    finally:
        conn.close()
    server.start()  # the same port and state
    at = int(server.request("HEAD", location).headers["upload-offset"])
    assert 0 < at <= sent
    r = server.request("PATCH", location, {"Upload-Offset": str(at), "Upload-Complete": "?1",
                                           "Content-Type": "application/partial-upload"}, body=data[at:])
    assert r.status == 200 and (root / "t").read_bytes() == data


# -- the ASGI side, in process ---------------------------------------------------------------


async def _exchange(app: Any, request: bytes, limits: ServerLimits | None = None) -> bytes:
    server = Server(app, "127.0.0.1", 0, limits)
    ports: list[int] = []
    serving = asyncio.create_task(server.serve(ports.append))
    try:
        async with asyncio.timeout(10):
            while not ports:
                await asyncio.sleep(0.01)
            reader, writer = await asyncio.open_connection("127.0.0.1", ports[0])
            writer.write(request)
            reply = await reader.read()  # the requests below end with Connection: close
            writer.close()
            return reply
    finally:
        server.stop()
        await serving


def test_the_extension_is_offered_and_carries_any_1xx_before_the_reply() -> None:
    seen: dict[str, Any] = {}
    lifespan: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                lifespan.append(message["type"])
                await send({"type": "lifespan.startup.complete"})
            lifespan.append(message["type"])
            await send({"type": "lifespan.shutdown.complete"})
            return
        seen["scope"] = scope
        await send({"type": INTERIM_RESPONSE, "status": 103, "headers": [(b"link", b"</a>; rel=preload")]})
        body = b""
        while True:
            message = await receive()
            body += message["body"]
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]})
        try:
            await send({"type": INTERIM_RESPONSE, "status": 104, "headers": []})
        except RuntimeError:
            seen["late interim refused"] = True
        await send({"type": "http.response.body", "body": body[:4]})

    reply = asyncio.run(_exchange(app, b"POST /p%20q?x=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
                                       b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"))
    assert reply.startswith(b"HTTP/1.1 103 Early Hints\r\nlink: </a>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert reply.endswith(b"\r\n\r\nabcd")
    scope = seen["scope"]
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == ("/p q", b"/p%20q", b"x=1")
    assert INTERIM_RESPONSE in scope["extensions"] and seen["late interim refused"]
    assert lifespan == ["lifespan.startup", "lifespan.shutdown"]


def test_an_application_that_fails_or_gives_no_reply_gets_500_and_http_1_0_no_extension() -> None:
    scopes: list[Any] = []

    async def failing(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scopes.append(scope)
            raise ValueError("boom")
        raise ValueError("no lifespan here")

    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    reply = asyncio.run(_exchange(failing, b"GET / HTTP/1.0\r\n\r\n"))
    assert reply.startswith(b"HTTP/1.1 500 ")
    assert scopes[0]["extensions"] == {}  # no 1xx may go to an HTTP/1.0 client
    assert asyncio.run(_exchange(silent, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")).startswith(
        b"HTTP/1.1 500 ")
    with pytest.raises(ApplicationStartFailed, match="start-up failed"):  # lifespan required: no serving
        asyncio.run(Server(failing, "127.0.0.1", 0, lifespan_required=True).serve())

    async def storage_refused(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        raise NotADirectory("the upload state directory /x is a file", hint="name a directory")

    # a project error from the start-up reaches the command as itself, to be said in one line
    with pytest.raises(NotADirectory, match="name a directory"):
        asyncio.run(Server(storage_refused, "127.0.0.1", 0, lifespan_required=True).serve())


def test_a_body_is_read_only_as_the_application_asks() -> None:
    """Backpressure: an application that does not read leaves the client's bytes in the socket."""
    state: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError("no lifespan")
        first = await receive()
        await state["go"].wait()
        total = len(first["body"])
        while (message := await receive())["more_body"]:
            total += len(message["body"])
        state["total"] = total
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body"})

    async def main() -> None:
        state["go"] = asyncio.Event()
        server = Server(app, "127.0.0.1", 0)
        ports: list[int] = []
        serving = asyncio.create_task(server.serve(ports.append))
        try:
            async with asyncio.timeout(30):
                while not ports:
                    await asyncio.sleep(0.01)
                size = 256 * MiB
                sock = socket.create_connection(("127.0.0.1", ports[0]))
                sock.setblocking(False)
                loop = asyncio.get_running_loop()
                await loop.sock_sendall(sock, f"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: {size}\r\n\r\n".encode())
                block = b"z" * MiB
                sent = 0
                while True:  # send until the socket takes no more: the server holds at most a few MiB
                    try:
                        sent += sock.send(block)
                    except BlockingIOError:
                        await asyncio.sleep(0.2)
                        try:
                            sent += sock.send(block)
                        except BlockingIOError:
                            break
                assert sent < 64 * MiB  # kernel buffers plus the server's own, never the whole body
                state["go"].set()
                while sent < size:
                    n = min(MiB, size - sent)
                    await loop.sock_sendall(sock, block[:n])
                    sent += n
                reply = await loop.sock_recv(sock, 1024)
                sock.close()
                assert reply.startswith(b"HTTP/1.1 204 ")
                assert state["total"] == size
        finally:
            server.stop()
            await serving

    asyncio.run(main())


def test_sighup_reads_the_configuration_and_tokens_again(tmp_path: Path, serve_http, poll) -> None:
    root = tmp_path / "root"
    root.mkdir()
    tokens = tmp_path / "tokens"
    tokens.write_text("alice:" + "a" * 20 + "\n")
    cfg = tmp_path / "http.toml"
    cfg.write_text(f'root = "{root}"\nmax_size = "5M"\ntoken_file = "{tokens}"\n')
    server = serve_http("--config", str(cfg))
    alice, bob = {"Authorization": "Bearer " + "a" * 20}, {"Authorization": "Bearer " + "b" * 20}

    def max_size() -> str:
        return server.request("OPTIONS", "/files/").headers["tus-max-size"]

    assert max_size() == str(5 * MiB)
    assert server.request("POST", "/files/x", bob | {"Upload-Complete": "?1"}, body=b"b").status == 401
    cfg.write_text(f'root = "{root}"\nmax_size = "7M"\ntoken_file = "{tokens}"\nmax_uploads = 9\n')
    tokens.write_text("bob:" + "b" * 20 + "\n")
    assert server.proc is not None
    server.proc.send_signal(signal.SIGHUP)
    poll(lambda: max_size() == str(7 * MiB), what="the reloaded --max-size")
    assert server.request("POST", "/files/x", bob | {"Upload-Complete": "?1"}, body=b"b").status == 201
    assert server.request("POST", "/files/y", alice | {"Upload-Complete": "?1"}, body=b"a").status == 401
    # a bad file is refused whole: the running settings stay, the server goes on
    cfg.write_text(f'root = "{root}"\nmax_size = "lots"\n')
    server.proc.send_signal(signal.SIGHUP)
    poll(lambda: b"reload refused" in server.log.read_bytes(), what="the refused reload in the log")
    assert max_size() == str(7 * MiB)
    log = server.log.read_text()
    assert "max-uploads change only at a restart" in log and "configuration and tokens read again" in log
    assert server.proc.poll() is None


def test_a_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = subprocess.run([sys.executable, "-m", "transfercore", "serve-http", "--root", str(tmp_path),
                              "--state-dir", str(tmp_path / "state"), "--port", str(port)],
                             capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in run.stderr and "Traceback" not in run.stderr
