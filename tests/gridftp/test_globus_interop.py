"""End to end with the real Globus client and server (Debian's globus-url-copy, globus-gridftp-server)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from transfercore.gridftp.markers import parse_range_marker
from transfercore.ranges import RangeSet
from transfercore.testing.faultproxy import FaultProxy

from .conftest import Served, needs_globus

pytestmark = [pytest.mark.globus, needs_globus]


def guc(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    proc = subprocess.run(["globus-url-copy", *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture
def src(tmp_path: Path) -> Path:
    p = tmp_path / "src.bin"
    p.write_bytes(os.urandom(6 * 1024 * 1024 + 12345))
    return p


@pytest.fixture(params=["uvloop", "asyncio"])
def ours(serve, root, request):
    """``serve`` on each event loop it can run on (uvloop, the default where installed, and asyncio's own)."""
    return serve("--root", str(root), "--anonymous-write", "--marker-interval", "0.3", "--event-loop", request.param)


def test_stream_put_and_get(ours, root, src, tmp_path):
    guc(f"file://{src}", ours.url("/put.bin"))
    assert (root / "put.bin").read_bytes() == src.read_bytes()
    back = tmp_path / "back.bin"
    guc(ours.url("/put.bin"), f"file://{back}")
    assert back.read_bytes() == src.read_bytes()


def test_mode_e_parallel_put_and_get_with_markers(ours, root, src, tmp_path):
    proc = guc("-dbg", "-vb", "-fast", "-p", "4", f"file://{src}", ours.url("/e.bin"))
    assert (root / "e.bin").read_bytes() == src.read_bytes()
    out = proc.stdout + proc.stderr
    assert "MODE E" in out and "111 Range Marker" in out
    # Markers come before 226, and 226 comes last.
    assert out.rindex("111 Range Marker") < out.rindex("226 ")
    back = tmp_path / "back.bin"
    proc = guc("-dbg", "-fast", "-p", "4", ours.url("/e.bin"), f"file://{back}")
    assert "Parallelism=4,4,4" in proc.stdout + proc.stderr
    assert back.read_bytes() == src.read_bytes()


def test_verify_checksum(ours, root, src):
    proc = guc("-dbg", "-fast", "-p", "2", "-verify-checksum", f"file://{src}", ours.url("/c.bin"))
    out = proc.stdout + proc.stderr
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    assert f"213 {md5}" in out


def test_list_and_cd(ours, root, src):
    guc("-cd", f"file://{src}", ours.url("/deep/er/x.bin"))
    assert (root / "deep" / "er" / "x.bin").read_bytes() == src.read_bytes()
    proc = guc("-list", ours.url("/deep/er/"))
    assert "x.bin" in proc.stdout


def test_third_party_restart_after_sigkill(real_server, tmp_path):
    """Real server as source, ours as destination; SIGKILL ours mid-transfer, restart it at once.

    The mock driver keeps its durable state in a directory shared between
    processes and sleeps in every write, so the kill lands mid-transfer.
    """
    # The real server reads as 'nobody', which cannot enter pytest's private tmp_path.
    source_dir = Path(tempfile.mkdtemp(prefix="tc-gridftp-src-"))
    source_dir.chmod(0o755)
    payload = os.urandom(16 * 1024 * 1024)
    (source_dir / "r.bin").write_bytes(payload)
    (source_dir / "r.bin").chmod(0o644)
    state = tmp_path / "state"
    state.mkdir()
    args = ["--driver", f"mock:///?dir={state}&slow=0.04", "--anonymous-write", "--marker-interval", "0.2"]
    ours = Served(args, 0, tmp_path / "serve.log").start()
    port = ours.port  # the port it picked, kept across its restart
    # The client reaches ours through a proxy that holds its reconnection until the
    # restarted server listens: under load the restart may take longer than the retry.
    proxy = FaultProxy(("127.0.0.1", port), connect_retry=60).start()
    try:
        cli = subprocess.Popen(
            [
                "globus-url-copy",
                "-dbg",
                "-vb",
                "-fast",
                "-p",
                "4",
                "-rst",
                "-rst-retries",
                "5",
                "-rst-interval",
                "1",
                f"ftp://127.0.0.1:{real_server}{source_dir}/r.bin",
                f"ftp://127.0.0.1:{proxy.port}/r.bin",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: list[str] = []
        killed = False
        assert cli.stdout is not None
        deadline = time.monotonic() + 90
        for line in cli.stdout:
            lines.append(line)
            assert time.monotonic() < deadline, "transfer took too long"
            if not killed and line.startswith("111 Range Marker"):
                ours.kill()
                killed = True
                ours = Served(args, port, tmp_path / "serve.log").start()
        assert cli.wait(30) == 0, "".join(lines[-40:])
        out = "".join(lines)
        assert killed
        rest = [line for line in lines if line.startswith("REST ")]
        assert rest, "the client never resumed with REST"
        # Fetch the result back from our server and compare.
        back = tmp_path / "back.bin"
        guc(ours.url("/r.bin"), f"file://{back}")
        assert back.read_bytes() == payload
        # A 553 reply (restart refused) starts a line; the port may contain "553" too.
        assert not re.search(r"^553[ -]", out, re.MULTILINE), out
    finally:
        proxy.stop()
        ours.stop()
        shutil.rmtree(source_dir, ignore_errors=True)


@pytest.mark.parametrize("inflight", ["1", "2"])
def test_third_party_into_hpss_sigkilled_after_two_markers_resumes_with_rest(
    real_server, tmp_path, monkeypatch, inflight
):
    """The real server as source, ``serve --driver hpss://`` (the emulator) as destination, with one
    segment executed at a time and with two (each in a PIO group of its own).

    Our server is SIGKILLed once the client has seen two 111 markers and is
    started again on the same port; ``globus-url-copy -rst`` sends ``REST``
    with the durable prefix it was told and the file ends identical.  Until
    then nothing is under the final name.
    """
    source_dir = Path(tempfile.mkdtemp(prefix="tc-gridftp-src-"))
    source_dir.chmod(0o755)
    size = 256 * 1024 * 1024
    with open(source_dir / "r.bin", "wb") as f:
        for _ in range(size // (32 * 1024 * 1024)):
            f.write(os.urandom(32 * 1024 * 1024))
    (source_dir / "r.bin").chmod(0o644)
    emu = tmp_path / "emu"
    emu.mkdir()
    monkeypatch.setenv("HPSS_EMU_ROOT", str(emu))
    # Movers slower than loopback (6 ms a 1 MiB block, 0.8-1.5 s for the file): two markers
    # come well before the end, however fast the server and the machine (the whole file
    # was once in before the second marker was read, and nothing was left to resume).
    monkeypatch.setenv("HPSS_EMU_MOVER_DELAY_US", "6000")
    args = ["--driver", f"hpss:///?segment=4MiB&block=1MiB&inflight={inflight}", "--anonymous-write",
            "--marker-interval", "0.1"]
    ours = Served(args, 0, tmp_path / "serve.log").start()
    port = ours.port  # the port it picked, kept across its restart
    # through a proxy that holds the client's reconnection until the restarted server listens
    proxy = FaultProxy(("127.0.0.1", port), connect_retry=60).start()
    try:
        cli = subprocess.Popen(
            ["globus-url-copy", "-dbg", "-vb", "-fast", "-p", "4", "-rst", "-rst-retries", "5",
             "-rst-interval", "1", f"ftp://127.0.0.1:{real_server}{source_dir}/r.bin",
             f"ftp://127.0.0.1:{proxy.port}/r.bin"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        lines: list[str] = []
        seen = 0
        killed_at: RangeSet | None = None
        held = RangeSet()
        assert cli.stdout is not None
        deadline = time.monotonic() + 120
        for line in cli.stdout:
            lines.append(line)
            assert time.monotonic() < deadline, "transfer took too long"
            if line.startswith("111 Range Marker") and killed_at is None:
                held = held | parse_range_marker(line)
                seen += 1
                if seen == 2:
                    ours.kill()
                    killed_at = held
                    assert not (emu / "r.bin").exists()  # nothing published before it is complete
                    assert (emu / ".r.bin.tcpart").exists()  # the driver's own partial name
                    ours = Served(args, port, tmp_path / "serve.log").start()
        assert cli.wait(30) == 0, "".join(lines[-40:])
        out = "".join(lines)
        assert killed_at is not None and killed_at == RangeSet.span(0, killed_at.end())
        rest = [line.split()[1] for line in lines if line.startswith("REST ")]
        assert rest, "the client never resumed with REST"
        assert RangeSet.parse(rest[-1]).prefix_end() >= killed_at.end()
        assert not re.search(r"^553[ -]", out, re.MULTILINE), out
        assert subprocess.run(["cmp", str(source_dir / "r.bin"), str(emu / "r.bin")]).returncode == 0
        assert sorted(p.name for p in emu.iterdir() if not p.name.startswith(".hpss")) == ["r.bin"]
    finally:
        proxy.stop()
        ours.stop()
        shutil.rmtree(source_dir, ignore_errors=True)
