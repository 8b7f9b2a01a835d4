"""Power cuts during uploads: every offset the server reported before a cut survives it.

The root and the upload records live on the power-loss file system (FUSE: only
fsynced bytes and names survive a crash).  Each round appends with curl at a
limited rate while ``HEAD`` collects the offsets the server reports; the server
is SIGKILLed and the file system cut; after the restart the offset must be at
least every offset reported before, and the finished file must equal the source
(bytes below a reported offset are never sent again, so a lost one would show).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from transfercore.driverkit import fsync_dir
from transfercore.testing.powerloss import PowerLossFS

pytestmark = pytest.mark.fuse

KiB = 1 << 10
CUTS = 10
#: Cuts mid-append in the draft's flow (each restarts the server: seconds each).
MID_APPEND_CUTS = 3
#: Cuts for the reference server, whose uploads vanish at every cut: a few show its figure.
REFERENCE_CUTS = 3


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", "-H", "Expect:", *args], capture_output=True, check=True, timeout=60)


def head_offset(base: str, location: str) -> int:
    out = curl("-I", base + location).stdout.decode()
    (line,) = [x for x in out.split("\r\n") if x.lower().startswith("upload-offset:")]
    return int(line.split(":")[1])


@pytest.mark.parametrize("into", ["posix", "spool"])
def test_reported_offsets_survive_power_cuts(tmp_path: Path, serve_http, poll, into: str) -> None:
    """``spool``: a destination that cannot resume (mock, ``model=none``), the spool in the state directory."""
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
        store = tmp_path / "mock-store"  # holds only published objects: off the power-loss mount
        store.mkdir()
        where = ("--root", str(root)) if into == "posix" else ("--driver", f"mock://pl/?model=none&dir={store}")
        server = serve_http(*where, "--sync-every", "64K", state=tmp_path / "mnt" / "state")
        out = curl("-i", "-X", "POST", "-H", "Upload-Complete: ?0", "-H", f"Upload-Length: {len(data)}",
                   "--data-binary", "", server.base + "/files/p.bin").stdout.decode()
        (location,) = [x.split(": ")[1] for x in out.split("\r\n") if x.lower().startswith("location:")]
        reported = 0
        for _ in range(MID_APPEND_CUTS):
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
        if into == "posix":
            assert (root / "p.bin").read_bytes() == data
        else:
            from transfercore_mock.driver import MockDriver

            with MockDriver("pl", {"model": "none", "dir": str(store)}).open_read("/p.bin") as reader:
                assert reader.read(0, reader.size) == data
    finally:
        if server is not None:
            server.stop()
        if fs.mounted:
            fs.crash(remount=False)


# -- the same cuts through the tus protocol, against this server and the reference Node server ------------


class NodeTusServer:
    """``@tus/server`` with ``@tus/file-store`` (npm), the reference tus server, on the power-loss mount."""

    def __init__(self, directory: Path, log: Path) -> None:
        from transfercore.testing.loopback import free_port

        self.directory = directory
        self.log = log
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> NodeTusServer:
        from transfercore.testing.loopback import wait_port

        node_dir = Path(__file__).parent / "node"
        if shutil.which("node") is None or not (node_dir / "node_modules" / "@tus" / "server").is_dir():
            pytest.fail(f"this test needs node and @tus/server: run 'npm ci --prefix {node_dir}' (CI does)")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(["node", str(node_dir / "tus-server.mjs"), str(self.directory),
                                          str(self.port)], stdout=log, stderr=log)
        wait_port(self.port, self.proc)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def tus_offset(url: str) -> int | None:
    out = curl("-I", "-H", "Tus-Resumable: 1.0.0", url).stdout.decode()
    if " 200" not in out.split("\r\n")[0]:
        return None  # the upload is gone
    (line,) = [x for x in out.split("\r\n") if x.lower().startswith("upload-offset:")]
    return int(line.split(":")[1])


def tus_patch(url: str, at: int, chunk: bytes, scratch: Path) -> int:
    """One tus append; the offset its reply reports."""
    (scratch / "chunk").write_bytes(chunk)
    out = curl("-i", "-X", "PATCH", "-H", "Tus-Resumable: 1.0.0", "-H", f"Upload-Offset: {at}",
               "-H", "Content-Type: application/offset+octet-stream", "--data-binary", f"@{scratch / 'chunk'}",
               url).stdout.decode()
    assert " 204" in out.split("\r\n")[0], out
    (line,) = [x for x in out.split("\r\n") if x.lower().startswith("upload-offset:")]
    return int(line.split(":")[1])


def tus_create(server, length: int) -> str:
    out = curl("-i", "-X", "POST", "-H", "Tus-Resumable: 1.0.0", "-H", f"Upload-Length: {length}",
               "-H", "Upload-Metadata: filename " + base64.b64encode(b"t.bin").decode(),
               server.base + "/files/").stdout.decode()
    (location,) = [x.split(": ", 1)[1] for x in out.split("\r\n") if x.lower().startswith("location:")]
    return location if location.startswith("http") else server.base + location


def tus_cuts(server, fs: PowerLossFS, data: bytes, scratch: Path, cuts: int) -> tuple[int, int]:
    """Cut the power ``cuts`` times, each right after a few acknowledged tus appends (as tuspy
    sends them); return (bytes below acknowledged offsets lost, uploads lost).  An upload the
    server no longer knows after a cut is counted and replaced by a new one."""
    url = tus_create(server, len(data))
    lost = gone = 0
    chunk = 256 * KiB
    for _ in range(cuts):
        at = tus_offset(url)
        assert at is not None
        acked = at
        for _ in range(4):
            acked = tus_patch(url, acked, data[acked:acked + chunk], scratch)
        server.kill()
        fs.crash()  # the power cut, right after the replies
        server.start()
        after = tus_offset(url)
        if after is None:
            lost, gone = lost + acked, gone + 1
            url = tus_create(server, len(data))
        else:
            lost += max(0, acked - after)
    return lost, gone


def test_tus_offsets_under_power_cuts_side_by_side_with_the_reference_server(
    tmp_path: Path, serve_http, capsys: pytest.CaptureFixture[str]
) -> None:
    data = os.urandom(12 * 1024 * KiB)
    figures = {}
    for name in ("transfercore", "@tus/server"):
        fs = PowerLossFS(tmp_path / name / "backing", tmp_path / name / "mnt", host_fsync=False)
        fs.mount()
        server = None
        try:
            root = tmp_path / name / "mnt" / "root"
            root.mkdir()
            fsync_dir(str(root.parent))
            if name == "transfercore":
                server = serve_http("--root", str(root), "--sync-every", "64K",
                                    state=tmp_path / name / "mnt" / "state")
            else:
                server = NodeTusServer(root, tmp_path / "tus-server.log").start()
            cuts = CUTS if name == "transfercore" else REFERENCE_CUTS
            figures[name] = (cuts, *tus_cuts(server, fs, data, tmp_path, cuts))
        finally:
            if server is not None:
                server.stop()
            if fs.mounted:
                fs.crash(remount=False)
    with capsys.disabled():
        for name, (cuts, lost, gone) in figures.items():
            print(f"\n{name}: {cuts} power cuts after tus appends, {lost} acknowledged bytes lost, "
                  f"{gone} uploads lost")
    assert figures["transfercore"] == (CUTS, 0, 0)
    assert "@tus/server" in figures  # measured, and printed above: its offsets are not promised durable
