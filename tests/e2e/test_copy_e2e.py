"""The real ``transfercore copy`` in a subprocess: SIGKILL at several points, run again.

The source is a mock store kept in a directory (shared between processes)
whose reads are slowed down, so a kill lands mid-transfer; the destination is
a real POSIX file.  After the kill, the partial file shows which blocks were
written: the ones outside the journal's marker are the bytes that move again.
"""

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from transfercore.journal import Journal  # noqa: E402
from transfercore.ranges import RangeSet  # noqa: E402
from transfercore.registry import open_location  # noqa: E402
from transfercore.sizes import format_size
from transfercore.testing.throttle import Throttle

KiB = 1024
BLOCK = 256 * KiB
STREAMS = 2
MARKER_BYTES = 1024 * KiB
SIZE = 8 * 1024 * KiB


def cli(*args, env):
    return [sys.executable, "-m", "transfercore", *args]


@pytest.fixture
def setup(tmp_path):
    data = random.Random(7).randbytes(SIZE)
    store = tmp_path / "store"
    store.mkdir()
    ep = open_location(f"mock://src/obj?dir={store}")
    writer = ep.driver.open_write("/obj", SIZE)
    writer.write(0, data)
    writer.complete()
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    return data, store, env, tmp_path


def start(src, dst, env, *extra):
    args = [*cli("copy", src, dst, "--json", "--streams", str(STREAMS), "--block-size", "256K",
                 "--marker-bytes", "1M", "--marker-interval", "0", *extra, env=env)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def written_blocks(partial: Path) -> RangeSet:
    """Blocks of the partial file holding data (the source is random, so never all zero)."""
    data = partial.read_bytes()
    out = []
    for off in range(0, len(data), BLOCK):
        if any(data[off : off + BLOCK]):
            out.append((off, min(off + BLOCK, SIZE)))
    return RangeSet.of(*out)


@pytest.mark.parametrize("kill_after_markers", [0, 1, 3, 6])
def test_sigkill_then_resume(setup, kill_after_markers):
    data, store, env, tmp = setup
    src = f"mock://src/obj?dir={store}&slow=0.03"
    dst = tmp / "out.bin"
    proc = start(src, str(dst), env)
    # Slowed further from outside: after the 6th of 8 markers only a few blocks remain, which a
    # test delayed on a busy machine could otherwise see the copy finish before it kills it.
    throttle = Throttle(proc.pid, duty=0.2, period=0.05)
    seen_marker = RangeSet()
    markers = 0
    try:
        for line in proc.stdout:
            event = json.loads(line)
            assert event["event"] != "done", "the copy finished before the kill point"
            if event["event"] == "marker":
                markers += 1
                seen_marker = RangeSet.parse(event["ranges"])
            if (kill_after_markers == 0 and event["event"] == "start") or (
                kill_after_markers and markers >= kill_after_markers
            ):
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        throttle.close()
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert not dst.exists(), "a partial object must never appear under the final name"

    with Journal(tmp / "state" / "transfercore" / "journal.sqlite") as journal:
        (entry,) = journal.entries()
    assert entry.state.value == "running"  # killed: nobody could record the end
    assert entry.marker.contains(seen_marker)  # nothing reported durable was lost
    (partial,) = [p for p in tmp.iterdir() if p.name.endswith(".tcpart")]
    moved_again = (written_blocks(partial) - entry.marker).total()
    assert moved_again <= MARKER_BYTES + STREAMS * BLOCK

    # Same command again (without the slowdown): resumes by itself.
    rerun = subprocess.run(cli("copy", f"mock://src/obj?dir={store}", str(dst), "--json", "--block-size", "256K",
                               env=env), capture_output=True, text=True, env=env, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    events = [json.loads(line) for line in rerun.stdout.splitlines()]
    done = events[-1]
    assert done["event"] == "done"
    if entry.marker:
        (resumed,) = [e for e in events if e["event"] == "resumed"]
        assert resumed["bytes"] == entry.marker.total()
        assert done["bytes_sent"] == SIZE - entry.marker.total()
    else:
        assert done["bytes_sent"] == SIZE
    assert dst.read_bytes() == data


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_ctrl_c_and_sigterm_stop_the_same_way_with_exit_130(setup, sig):
    data, store, env, tmp = setup
    dst = tmp / "out.bin"
    proc = start(f"mock://src/obj?dir={store}&slow=0.03", str(dst), env)
    throttle = Throttle(proc.pid, duty=0.2, period=0.05)  # still copying when the signal comes
    try:
        for line in proc.stdout:
            if json.loads(line)["event"] == "marker":
                proc.send_signal(sig)
                break
    finally:
        throttle.close()
    rest = proc.stdout.read()
    proc.wait(30)
    assert proc.returncode == 130
    err = proc.stderr.read()
    events = [json.loads(x) for x in rest.splitlines()]
    (interrupted,) = [e for e in events if e["event"] == "interrupted"]
    assert interrupted["durable_bytes"] > 0 and interrupted["schema"] == 1 and interrupted["transfer_id"] == 1
    assert not [e for e in events if e["event"] == "error"]
    # One line, the same for both signals, naming the durable bytes.
    assert err.splitlines() == [
        f"transfercore: interrupted with {format_size(interrupted['durable_bytes'])} durable; "
        "run the same command again to resume"
    ]
    status = subprocess.run(cli("status", "--json", env=env), capture_output=True, text=True, env=env)
    (entry,) = json.loads(status.stdout)["files"]
    assert entry["state"] == "interrupted" and entry["durable_bytes"] == interrupted["durable_bytes"]


def test_resume_out_of_posix_into_a_mock_store_after_sigkill(setup):
    """The other direction: POSIX source, mock destination in a directory."""
    data, _store, env, tmp = setup
    src = tmp / "src.bin"
    src.write_bytes(data)
    dst_store = tmp / "dst-store"
    dst_store.mkdir()
    dst = f"mock://dst/out?dir={dst_store}&slow=0.03"
    proc = start(str(src), dst, env)
    throttle = Throttle(proc.pid, duty=0.2, period=0.05)  # still copying when the kill comes
    try:
        for line in proc.stdout:
            if json.loads(line)["event"] == "marker":
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        throttle.close()
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    rerun = subprocess.run(cli("copy", str(src), f"mock://dst/out?dir={dst_store}", "--json", env=env),
                           capture_output=True, text=True, env=env, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    assert any(json.loads(x)["event"] == "resumed" for x in rerun.stdout.splitlines())
    with open_location(f"mock://dst/out?dir={dst_store}").driver.open_read("/out") as reader:
        assert reader.read(0, reader.size) == data


def test_power_loss_between_runs(setup):
    """A failed run, then a simulated power loss of the destination store, then the same command."""
    data, _store, env, tmp = setup
    src = tmp / "src.bin"
    src.write_bytes(data)
    dst_store = tmp / "dst-store"
    dst_store.mkdir()
    first = subprocess.run(cli("copy", str(src), f"mock://dst/out?dir={dst_store}&fail_after=5M&corrupt=true",
                               "--json", "--block-size", "256K", "--marker-bytes", "1M", env=env),
                           capture_output=True, text=True, env=env, timeout=60)
    assert first.returncode == 1 and "injected fault" in first.stderr
    open_location(f"mock://dst/out?dir={dst_store}&corrupt=true").driver.simulate_crash()
    rerun = subprocess.run(cli("copy", str(src), f"mock://dst/out?dir={dst_store}", "--json", env=env),
                           capture_output=True, text=True, env=env, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    events = [json.loads(x) for x in rerun.stdout.splitlines()]
    (resumed,) = [e for e in events if e["event"] == "resumed"]
    assert 0 < resumed["bytes"] <= 5 * 1024 * KiB
    with open_location(f"mock://dst/out?dir={dst_store}").driver.open_read("/out") as reader:
        assert reader.read(0, reader.size) == data
