"""The benchmarks' floor server (``benchmarks/floor_server.py``) does what its figures claim.

Its figure is "the real server with nothing but a durable 226", so the module
must flush every file and its directory before the reply in the ``durable``
mode, flush nothing in the ``none`` mode, and store the tree the real client
sends whole either way.  Run with the real ``globus-gridftp-server`` and
``globus-url-copy``, the server traced with ``strace``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from transfercore.testing.loopback import free_port, wait_port

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import floor_server  # noqa: E402


def _tree(base: Path) -> int:
    sizes = [0, 1, 4096, 70_000, 300_000, 17]
    for i, size in enumerate(sizes * 3):
        d = base / f"d{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}").write_bytes(os.urandom(size))
    return len(sizes) * 3


def _tracer_of(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        return int(next(line for line in fh if line.startswith("TracerPid:")).split()[1])


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return floor_server.build(tmp_path_factory.mktemp("floor-module"))


@pytest.mark.parametrize("durable", [True, False], ids=["durable", "none"])
def test_the_floor_module_flushes_each_file_and_its_directory_only_when_durable(
    tmp_path: Path, module: Path, durable: bool
) -> None:
    source, root, trace = tmp_path / "src", tmp_path / "root", tmp_path / "trace"
    root.mkdir()
    files = _tree(source)
    port = free_port()
    who = ["-anonymous-user", "root", "-allow-root"] if os.geteuid() == 0 else []
    argv, env = floor_server.launch(
        "globus-gridftp-server", module, root, durable,
        ["-aa", *who, "-p", str(port), "-control-interface", "127.0.0.1", "-data-interface", "127.0.0.1",
         "-c", "/dev/null", "-d", "ERROR"],
    )
    server = subprocess.Popen(argv, env=env)
    tracer = None
    try:
        wait_port(port, server)
        # attached to the listener, it follows every session process the listener forks
        tracer = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=fsync,rename", "-o", str(trace),
                                   "-p", str(server.pid)])
        deadline = time.monotonic() + 20
        while _tracer_of(server.pid) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        subprocess.run(
            ["globus-url-copy", "-r", "-cd", "-cc", "2", "-fast", f"file://{source}/", f"ftp://127.0.0.1:{port}/t/"],
            check=True, timeout=120, capture_output=True,
        )
    finally:
        if tracer is not None:
            tracer.send_signal(signal.SIGINT)
            tracer.wait(20)
        server.terminate()
        server.wait(20)
    assert subprocess.run(["diff", "-r", str(source), str(root / "t")], capture_output=True).returncode == 0
    assert not [n for _, _, names in os.walk(root) for n in names if n.endswith(".floor")]
    calls = trace.read_text()
    renames = re.findall(r"rename\(\"[^\"]*/\.(f\d+)\.floor\", \"[^\"]*/(f\d+)\"", calls)
    assert len(renames) == files and all(a == b for a, b in renames)
    # (a call another traced process interrupts is printed in two parts: each counted by its start)
    fsyncs = len(re.findall(r"\bfsync\(\d+", calls))
    # durable: the file before its rename, its directory after; none: not one
    assert fsyncs == (2 * files if durable else 0)
