"""``serve-http --metrics-port``: bytes received and made durable, requests by status (a real tus upload)."""

from __future__ import annotations

import base64
import http.client
import os
import subprocess
import sys
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from transfercore.testing.loopback import free_port, wait_port, wait_port_file


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def request(port: int, method: str, path: str, headers: dict[str, str], body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


def test_a_tus_upload_in_two_requests_is_counted(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    mport = free_port()  # the metrics listener announces no port of its own: probed
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "transfercore", "serve-http", "--root", str(root), "--port", "0",
         "--port-file", str(port_file), "--state-dir", str(tmp_path / "state"), "--metrics-port", str(mport),
         "--sync-every", "64K"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ | {"XDG_STATE_HOME": str(tmp_path)})
    try:
        port = wait_port_file(port_file, proc)
        wait_port(mport, proc)
        data = os.urandom(300_000)
        tus = {"Tus-Resumable": "1.0.0"}
        meta = "filename " + base64.b64encode(b"counted.bin").decode()
        status, headers = request(port, "POST", "/files/", tus | {"Upload-Length": str(len(data)),
                                                                  "Upload-Metadata": meta})
        assert status == 201, headers
        where = headers["location"].removeprefix(f"http://127.0.0.1:{port}")
        patch = tus | {"Content-Type": "application/offset+octet-stream"}
        status, headers = request(port, "PATCH", where, patch | {"Upload-Offset": "0"}, data[:100_000])
        assert status == 204 and headers["upload-offset"] == "100000"
        middle = scrape(mport)
        assert middle[("transfercore_http_bytes_received_total", ())] == 100_000
        assert middle[("transfercore_http_bytes_durable_total", ())] == 100_000
        status, headers = request(port, "PATCH", where, patch | {"Upload-Offset": "100000"}, data[100_000:])
        assert status == 204 and headers["upload-offset"] == str(len(data))
        deadline = time.monotonic() + 10
        while not (root / "counted.bin").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (root / "counted.bin").read_bytes() == data
        end = scrape(mport)
        assert end[("transfercore_http_bytes_received_total", ())] == len(data)
        assert end[("transfercore_http_bytes_durable_total", ())] == len(data)
        assert end[("transfercore_http_requests_total", (("code", "204"), ("method", "PATCH")))] == 2
        assert end[("transfercore_http_requests_total", (("code", "201"), ("method", "POST")))] == 1
        assert end[("transfercore_http_requests_in_progress", ())] == 0
    finally:
        proc.terminate()
        proc.wait(10)
