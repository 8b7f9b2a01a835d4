"""``serve --metrics-port``: the Prometheus endpoint, scraped while a MODE E upload runs."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from transfercore.gridftp.modee import encode_block, encode_eof_eod
from transfercore.testing.loopback import free_port

from .conftest import Client
from .test_serve_workers import children

BLOCK = 256 * 1024
SIZE = 40 * BLOCK


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def poll(port: int, done, timeout: float = 20.0):
    """Scrape until ``done(samples)`` (bounded); the last samples."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(port)
        if done(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def test_bytes_durable_grow_during_an_upload_and_end_at_its_size(serve, root):
    mport = free_port()
    srv = serve("--root", str(root), "--anonymous-write", "--marker-interval", "0.2", "--metrics-port", str(mport))
    data = os.urandom(SIZE)
    start = scrape(mport)
    assert value(start, "transfercore_bytes_durable_total") == 0
    assert value(start, "transfercore_sessions", state="transferring") == 0

    c = Client(srv.port)
    c.login()
    for command in ("TYPE I", "MODE E", f"ALLO {SIZE}"):
        assert c.cmd(command)[0] == 200, command
    host, port = c.pasv()
    c.raw(b"STOR /scraped.bin\r\n")
    sock = socket.create_connection((host, port), timeout=20)
    assert c.reply()[0] == 150
    half = SIZE // 2
    for off in range(0, half, BLOCK):
        sock.sendall(encode_block(off, data[off:off + BLOCK]))

    # the first half is received and, within a few marker intervals, named durable by 111 markers
    mid = poll(mport, lambda s: value(s, "transfercore_bytes_durable_total") >= half)
    durable_mid = value(mid, "transfercore_bytes_durable_total")
    assert 0 < durable_mid <= half
    assert value(mid, "transfercore_bytes_received_total") >= half
    assert value(mid, "transfercore_sessions", state="transferring") == 1
    assert value(mid, "transfercore_markers_sent_total", kind="restart") >= 1
    assert value(mid, "transfercore_transfers_total", type="STOR", reason="complete") == 0

    for off in range(half, SIZE, BLOCK):
        sock.sendall(encode_block(off, data[off:off + BLOCK]))
    sock.sendall(encode_eof_eod(1))
    sock.close()
    replies = [c.reply()]
    while replies[-1][0] < 200:
        replies.append(c.reply())
    assert replies[-1][0] == 226, replies
    assert (root / "scraped.bin").read_bytes() == data

    end = poll(mport, lambda s: value(s, "transfercore_transfers_total", type="STOR", reason="complete") == 1)
    assert value(end, "transfercore_bytes_durable_total") == SIZE > durable_mid
    assert value(end, "transfercore_bytes_received_total") == SIZE
    assert value(end, "transfercore_sessions", state="transferring") == 0
    assert value(end, "transfercore_sessions", state="idle") == 1
    assert value(end, "transfercore_durable_seconds_count") >= 1
    assert value(end, "transfercore_durable_seconds_bucket", le="+Inf") == value(
        end, "transfercore_durable_seconds_count")
    assert value(end, "process_resident_memory_bytes") > 10 << 20
    assert value(end, "transfercore_storage_free_bytes") > 0
    assert ("transfercore_spool_bytes", ()) not in end  # no --spool-dir
    assert value(end, "process_open_fds") > 0
    c.close()


def test_the_spool_directory_is_measured(serve, root, tmp_path):
    """An upload without ALLO is spooled: the spool's bytes show while it waits for the rest
    (once past what a spool holds in memory first)."""
    from transfercore.gridftp.spool import MEMORY_FIRST

    size = MEMORY_FIRST + (1 << 20)
    spool = tmp_path / "spool"
    spool.mkdir()
    mport = free_port()
    srv = serve("--root", str(root), "--anonymous-write", "--spool-dir", str(spool), "--metrics-port", str(mport))
    assert value(scrape(mport), "transfercore_spool_bytes") == 0
    assert value(scrape(mport), "transfercore_spool_free_bytes") > 0
    c = Client(srv.port)
    c.login()
    assert c.cmd("TYPE I")[0] == 200
    host, port = c.pasv()
    c.raw(b"STOR /spooled.bin\r\n")
    sock = socket.create_connection((host, port), timeout=20)
    assert c.reply()[0] == 150
    sock.sendall(os.urandom(size))
    mid = poll(mport, lambda s: value(s, "transfercore_spool_bytes") >= size)
    assert value(mid, "transfercore_spool_bytes") >= size
    sock.close()
    assert c.reply()[0] == 226
    assert (root / "spooled.bin").stat().st_size == size
    end = poll(mport, lambda s: value(s, "transfercore_spool_bytes") == 0)
    assert value(end, "transfercore_spool_bytes") == 0
    c.close()


def test_metrics_port_without_prometheus_client_says_what_to_install(tmp_path, root):
    import subprocess
    import sys

    # the package hidden: a stub that fails to import, first on the path
    stub = tmp_path / "stub"
    (stub / "prometheus_client").mkdir(parents=True)
    (stub / "prometheus_client" / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    proc = subprocess.run(
        [sys.executable, "-m", "transfercore", "serve", "--root", str(root), "--anonymous", "--port", "0",
         "--metrics-port", str(free_port())],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(stub)},
    )
    assert proc.returncode == 2, proc.stderr
    assert "prometheus_client" in proc.stderr and "transfercore[metrics]" in proc.stderr


@pytest.mark.parametrize("port", ["70000", "-2"])
def test_a_bad_metrics_port_is_a_usage_error(root, port):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "transfercore", "serve", "--root", str(root), "--anonymous", "--port", "0",
         "--metrics-port", port], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "not a TCP port" in proc.stderr, proc.stderr


# -- serve --workers N: the supervisor adds up the workers' figures --------------------------


def _upload(port: int, name: str, data: bytes) -> Client:
    c = Client(port)
    c.login()
    host, dport = c.pasv()
    c.raw(f"STOR /{name}\r\n".encode())
    with socket.create_connection((host, dport), timeout=10) as d:
        d.sendall(data)
    assert [code for code, _ in c.until_final()] == [150, 226]
    return c


def test_workers_metrics_are_the_sum_of_every_worker_and_survive_a_dead_one(serve, root):
    mport = free_port()
    srv = serve("--root", str(root), "--anonymous-write", "--workers", "2", "-v", "--metrics-port", str(mport))
    # two sessions open at once: one on each worker (a worker ahead leaves the next to the other)
    clients = [_upload(srv.port, f"f{i}", os.urandom(100_000)) for i in range(2)]
    log = srv.log.read_text()
    workers = {(int(n) - 1) % 2 for n in re.findall(r"session (\d+): anonymous logged in", log)}
    assert workers == {0, 1}, log
    samples = poll(mport, lambda s: value(s, "transfercore_transfers_total", type="STOR", reason="complete") == 2)
    assert value(samples, "transfercore_transfers_total", type="STOR", reason="complete") == 2
    assert value(samples, "transfercore_bytes_received_total") == 200_000
    assert value(samples, "transfercore_sessions", state="idle") == 2
    for c in clients:
        c.close()
    # a worker killed: what it counted stays in the totals
    os.kill(children(srv.proc.pid)[0], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while "accepts connections again" not in srv.log.read_text():
        assert time.monotonic() < deadline, "no replacement worker"
        time.sleep(0.05)
    _upload(srv.port, "f2", os.urandom(50_000)).close()
    samples = poll(mport, lambda s: value(s, "transfercore_transfers_total", type="STOR", reason="complete") == 3)
    assert value(samples, "transfercore_transfers_total", type="STOR", reason="complete") == 3
    assert value(samples, "transfercore_bytes_received_total") == 250_000
