"""``serve-http --cpu-affinity``: the process's threads keep the CPU it is given, or stay where they are."""

from __future__ import annotations

import os
from pathlib import Path

from transfercore.testing.loopback import cpus_of_threads


def _upload(server, root: Path) -> None:
    # a creation with its whole body (no interim reply without the draft's version): the server
    # has started its worker threads by its reply
    r = server.request("POST", "/files/a.bin", headers={"Upload-Complete": "?1"}, body=b"x" * 70_000)
    assert r.status == 201
    assert (root / "a.bin").read_bytes() == b"x" * 70_000


def test_serve_http_keeps_its_threads_on_the_cpu_it_is_given(tmp_path: Path, serve_http) -> None:
    root = tmp_path / "root"
    root.mkdir()
    cpu = min(os.sched_getaffinity(0))
    server = serve_http("--root", str(root), "--cpu-affinity", str(cpu))
    _upload(server, root)
    assert server.proc is not None and cpus_of_threads(server.proc.pid) == {frozenset({cpu})}


def test_serve_http_by_default_stays_where_it_was_started(tmp_path: Path, serve_http) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = serve_http("--root", str(root))
    _upload(server, root)
    # as the thread that started it
    assert server.proc is not None and cpus_of_threads(server.proc.pid) == {frozenset(os.sched_getaffinity(0))}
