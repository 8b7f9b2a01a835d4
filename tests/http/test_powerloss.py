"""Power cuts during uploads: every offset the server reported before a cut survives it.

The root and the upload records live on the power-loss file system (FUSE: only
fsynced bytes and names survive a crash).  Each round appends with curl at a
limited rate while ``HEAD`` collects the offsets the server reports; the server
is SIGKILLed and the file system cut; after the restart the offset must be at
least every offset reported before, and the finished file must equal the source
(bytes below a reported offset are never sent again, so a lost one would show).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from transfercore.driverkit import fsync_dir
from transfercore.testing.powerloss import PowerLossFS

pytestmark = pytest.mark.fuse

KiB = 1 << 10
CUTS = 10


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", "-H", "Expect:", *args], capture_output=True, check=True, timeout=60)


def head_offset(base: str, location: str) -> int:
    out = curl("-I", base + location).stdout.decode()
    (line,) = [x for x in out.split("\r\n") if x.lower().startswith("upload-offset:")]
    return int(line.split(":")[1])


def test_reported_offsets_survive_power_cuts(tmp_path: Path, serve_http, poll) -> None:
    fs = PowerLossFS(tmp_path / "backing", tmp_path / "mnt", host_fsync=False)
    fs.mount()
    server = None
    try:
        root = tmp_path / "mnt" / "root"
        root.mkdir()
        fsync_dir(str(root.parent))  # the served directory exists before the first cut
        src = tmp_path / "src.bin"
        data = os.urandom(12 * 1024 * KiB)
        src.write_bytes(data)
        # the upload records are on the power-loss file system too
        server = serve_http("--root", str(root), "--sync-every", "64K", state=tmp_path / "mnt" / "state")
        out = curl("-i", "-X", "POST", "-H", "Upload-Complete: ?0", "-H", f"Upload-Length: {len(data)}",
                   "--data-binary", "", server.base + "/files/p.bin").stdout.decode()
        (location,) = [x.split(": ")[1] for x in out.split("\r\n") if x.lower().startswith("location:")]
        reported = 0
        for _ in range(CUTS):
            at = head_offset(server.base, location)
            (tmp_path / "rest").write_bytes(data[at:])
            patch = subprocess.Popen(
                ["curl", "-sS", "-o", os.devnull, "-X", "PATCH", "--limit-rate", "4M", "-H", "Expect:",
                 "-H", "Upload-Complete: ?1", "-H", f"Upload-Offset: {at}",
                 "-H", "Content-Type: application/partial-upload", "--data-binary", f"@{tmp_path / 'rest'}",
                 server.base + location], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            seen = [at]

            def progressed(start: int = at, seen: list[int] = seen) -> bool:
                seen.append(head_offset(server.base, location))
                return seen[-1] > start

            try:
                poll(progressed, what="an append to make progress")
            finally:
                server.kill()
                fs.crash()  # the power cut: the file system loses everything not synced
                patch.wait(20)
            reported = max(reported, *seen)
            server.start()
            after = head_offset(server.base, location)
            assert after >= reported, f"offsets {seen} were reported before the cut, {after} is left"
        at = head_offset(server.base, location)
        assert 0 < at < len(data)
        (tmp_path / "rest").write_bytes(data[at:])
        curl("-X", "PATCH", "-H", "Upload-Complete: ?1", "-H", f"Upload-Offset: {at}",
             "-H", "Content-Type: application/partial-upload", "--data-binary", f"@{tmp_path / 'rest'}",
             server.base + location)
        assert (root / "p.bin").read_bytes() == data
    finally:
        if server is not None:
            server.stop()
        if fs.mounted:
            fs.crash(remount=False)
