"""Power loss under the DSI (the project's power-loss file system) after 111 markers.

After two restart markers the power is cut: every byte those markers named must be in
the partial file, the driver's record must back the marker, and a resume with REST must
be accepted and end identical.  The same upload through the server's built-in file
storage, side by side, loses what its markers named (it never flushes).
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest
from transfercore_globus_dsi.testing import Control, lost_bytes, stop_client, upload_until_markers

from transfercore.ranges import RangeSet
from transfercore.registry import open_location
from transfercore.testing.loopback import free_port, start_globus_server
from transfercore.testing.powerloss import PowerLossFS, check_fuse

pytestmark = [pytest.mark.globus, pytest.mark.fuse]

SIZE = 40 * 1024 * 1024
#: the client runs this fraction of the time, so two 5 s marker periods pass mid-upload
DUTY = 0.005


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@pytest.fixture
def work() -> Path:
    # outside pytest's private tmp_path: the built-in server's sessions run as nobody
    d = Path(tempfile.mkdtemp(prefix="tc-dsi-powerloss-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def source(work: Path) -> Path:
    p = work / "source.bin"
    p.write_bytes(random.Random(12).randbytes(SIZE))
    return p


def _survivor(directory: Path, name: str) -> Path | None:
    if (directory / name).exists():
        return directory / name
    partials = sorted(directory.glob(f".{name}.*.tcpart"))
    return partials[0] if len(partials) == 1 else None


def test_power_loss_after_markers_loses_no_marked_byte_and_resumes(dsi_server, work, source):
    check_fuse()
    fs = PowerLossFS(work / "backing", work / "mnt")
    fs.mount()
    try:
        target = Path(fs.mountpoint) / "up"
        target.mkdir()
        _fsync_dir(Path(fs.mountpoint))
        server = dsi_server(f"posix://{target}")
        client, throttle, marked = upload_until_markers(server.ftp("/dst.bin"), source, 2, DUTY)
        fs.crash()  # the power is cut right after the second marker reached the client
        stop_client(client, throttle)
        server.kill_sessions()
        assert marked and marked.total() < SIZE
        survivor = _survivor(target, "dst.bin")
        assert survivor is not None, f"the partial file did not survive: {os.listdir(target)}"
        assert lost_bytes(source, survivor, marked) == 0
        # the driver's durable record backs every byte the markers named
        driver = open_location(f"posix://{target}").driver
        assert driver.partial(f"{target}/dst.bin").contains(marked)
        # resume: REST at the end of the marked prefix, the driver accepts it
        n = marked.prefix_end()
        assert n > 0
        payload = source.read_bytes()
        c = Control(server.port)
        c.login()
        replies = c.stor("/dst.bin", payload[n:], alloc=SIZE, rest=str(n))
        c.close()
        assert replies[-1][0] == 226, replies
        assert (target / "dst.bin").read_bytes() == payload
    finally:
        if fs.mounted:
            fs.crash(remount=False)


def test_power_loss_built_in_file_storage_side_by_side(work, source, capsys):
    """The same cut under the server's own file storage: its 111 markers name bytes it
    never flushed, and the power-loss file system shows them lost."""
    check_fuse()
    fs = PowerLossFS(work / "backing2", work / "mnt2")
    fs.mount()
    port = free_port()
    pidfile = work / "gsrv.pid"
    try:
        target = Path(fs.mountpoint) / "up"
        target.mkdir()
        target.chmod(0o777)
        _fsync_dir(target)
        _fsync_dir(Path(fs.mountpoint))
        start_globus_server(port, pidfile, work / "gsrv.log")
        url = f"ftp://127.0.0.1:{port}{target}/dst.bin"
        client, throttle, marked = upload_until_markers(url, source, 2, DUTY)
        fs.crash()
        stop_client(client, throttle)
        survivor = target / "dst.bin" if (target / "dst.bin").exists() else None
        lost = lost_bytes(source, survivor, marked)
        with capsys.disabled():
            print(f"\nbuilt-in file storage: {lost} of {marked.total()} marked bytes lost at the power cut")
        assert lost > 0
    finally:
        import signal

        from transfercore_globus_dsi.testing import children

        try:
            pid = int(pidfile.read_text().split()[0])
            for child in children(pid):
                os.kill(child, signal.SIGKILL)
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError):
            pass
        if fs.mounted:
            fs.crash(remount=False)


def test_marked_ranges_helper_counts_loss(tmp_path):
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.write_bytes(b"x" * 10000)
    b.write_bytes(b"x" * 5000 + b"y" * 5000)
    assert lost_bytes(a, b, RangeSet.span(0, 4096)) == 0
    assert lost_bytes(a, b, RangeSet.span(0, 10000)) == 5000 + 904  # the page holding byte 5000
    assert lost_bytes(a, None, RangeSet.span(0, 100)) == 100
