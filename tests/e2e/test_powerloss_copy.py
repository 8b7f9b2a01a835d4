"""The real ``transfercore copy`` onto a file system that loses power mid-transfer.

The destination is a POSIX file inside a mounted :class:`PowerLossFS`: bytes
not fsynced are gone after :meth:`PowerLossFS.crash`, as after a power cut,
which killing the copying process alone never shows (the page cache survives
a process crash).  The source is a mock store kept in a directory with slowed
reads, so that the crash lands while the copy runs; the journal lives on the
ordinary disk, as a real deployment keeps it off the destination.

Every marker printed by ``--json`` before the crash is a promise: after the
crash the partial file must still hold those bytes, the next run of the same
command must resume from at least that marker, and the finished file must
equal the source.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from transfercore.ranges import RangeSet
from transfercore.registry import open_location
from transfercore.testing.powerloss import PowerLossFS, check_fuse

pytestmark = pytest.mark.fuse

MiB = 1024 * 1024
SIZE = 24 * MiB
BLOCK = "256K"
#: Seconds per source read: 96 blocks over 2 streams take about 1.5 s, long
#: enough for the crash to land mid-transfer, short enough for a fast test.
SLOW = 0.03
TIMEOUT = 60


@pytest.fixture
def scene(tmp_path):
    # FUSE missing must fail the test, never skip it.
    check_fuse()
    data = random.Random(20260601).randbytes(SIZE)
    store = tmp_path / "store"
    store.mkdir()
    endpoint = open_location(f"mock://plsrc/obj?dir={store}")
    writer = endpoint.driver.open_write("/obj", SIZE)
    writer.write(0, data)
    writer.complete()
    endpoint.driver.close()
    fs = PowerLossFS(tmp_path / "backing", tmp_path / "mnt", host_fsync=False)
    fs.mount()
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    try:
        yield Scene(data, f"mock://plsrc/obj?dir={store}&slow={SLOW}", fs, tmp_path / "journal.db", env)
    finally:
        if fs.mounted:
            fs.crash(remount=False)


class Scene:
    def __init__(self, data: bytes, source: str, fs: PowerLossFS, journal: Path, env: dict[str, str]) -> None:
        self.data = data
        self.source = source
        self.fs = fs
        self.journal = journal
        self.env = env

    @property
    def destination(self) -> Path:
        return Path(self.fs.mountpoint) / "out.bin"

    def start(self) -> subprocess.Popen[str]:
        cmd = [
            sys.executable, "-m", "transfercore", "copy", self.source, str(self.destination),
            "--json", "--journal", str(self.journal), "--streams", "2", "--block-size", BLOCK,
            "--marker-interval", "0.2", "--marker-bytes", "2M",
        ]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env)

    def partial_file(self) -> Path:
        found = sorted(Path(self.fs.mountpoint).glob(".out.bin.*.tcpart"))
        assert len(found) == 1, f"expected one partial file after the crash, found {found}"
        return found[0]

    def recorded_marker(self) -> RangeSet:
        endpoint = open_location(str(self.destination))
        try:
            return endpoint.driver.partial(endpoint.path)
        finally:
            endpoint.driver.close()


def run_until_crash(scene: Scene, rng: random.Random) -> RangeSet:
    """Start a copy, cut the power after a random number of markers plus a random
    delay, and return the last marker the copy printed before the cut."""
    proc = scene.start()
    assert proc.stdout is not None
    crash_after = rng.randint(1, 4)
    markers = 0
    last = RangeSet()
    events = []
    for line in proc.stdout:
        event = json.loads(line)
        events.append(event["event"])
        assert event["event"] != "done", f"the copy finished before the crash point; events {events}"
        if event["event"] == "marker":
            markers += 1
            last = RangeSet.parse(event["ranges"])
            if markers >= crash_after:
                break
    # Lands between markers, so blocks written but not yet marked are lost too.
    time.sleep(rng.uniform(0.0, 0.15))
    scene.fs.crash()
    rest, err = proc.communicate(timeout=TIMEOUT)
    for line in rest.splitlines():
        assert json.loads(line)["event"] != "done", "the copy reported done although its file system crashed"
    assert proc.returncode != 0, f"the copy succeeded across a power cut: {err}"
    assert markers >= crash_after, f"only {markers} markers before the copy ended: {err}"
    return last


def check_marker_survived(scene: Scene, promised: RangeSet) -> None:
    """Every byte under a printed marker is still in the partial file after the crash."""
    assert promised, "the crash point must follow at least one printed marker"
    recorded = scene.recorded_marker()
    assert recorded.contains(promised), (
        f"the destination's resume record {recorded} lost ranges {promised - recorded} of the printed marker"
    )
    with open(scene.partial_file(), "rb") as fh:
        for r in promised:
            fh.seek(r.start)
            got = fh.read(r.end - r.start)
            assert got == scene.data[r.start : r.end], f"bytes {r.start}-{r.end} under a printed marker were lost"


def resume(scene: Scene) -> tuple[dict, dict]:
    """Run the same command again to the end; return its resumed and done events."""
    proc = scene.start()
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, f"the resumed copy failed ({proc.returncode}): {err}"
    events = {}
    for line in out.splitlines():
        event = json.loads(line)
        events.setdefault(event["event"], event)
    assert "restart" not in events, f"the resume started from zero: {events['restart']['reason']}"
    assert "resumed" in events, f"the second run did not resume; events {sorted(events)}"
    return events["resumed"], events["done"]


def check_resumed_from(promised: RangeSet, resumed: dict, done: dict) -> None:
    marker = RangeSet.parse(resumed["marker"])
    assert marker.contains(promised), f"resumed from {marker}, which lacks {promised - marker} of the printed marker"
    assert done["bytes_resumed"] == marker.total() == resumed["bytes"]
    assert done["bytes_resumed"] >= promised.total()
    # Only the complement moves again: fewer bytes than the whole file.
    assert done["bytes_sent"] == SIZE - marker.total()
    assert done["bytes_sent"] < SIZE


@pytest.mark.parametrize("seed", [11, 29, 47])
def test_power_cut_mid_copy_loses_no_marked_byte(scene, seed):
    rng = random.Random(seed)
    promised = run_until_crash(scene, rng)
    check_marker_survived(scene, promised)
    resumed, done = resume(scene)
    check_resumed_from(promised, resumed, done)
    assert scene.destination.read_bytes() == scene.data
    assert not list(Path(scene.fs.mountpoint).glob(".out.bin.*"))
    # The finished file survives the next power cut: complete() made it durable.
    scene.fs.crash()
    assert scene.destination.read_bytes() == scene.data


def test_the_check_catches_a_copy_that_never_syncs(scene, tmp_path):
    # The same scenario with fsync and fdatasync turned into no-ops in the
    # copying process: markers are printed but nothing reaches the media, so
    # the check above must fail.  This keeps the power-loss test honest.
    hooks = tmp_path / "nosync"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text("import os\nos.fsync = os.fdatasync = lambda fd: None\n")
    scene.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hooks), scene.env.get("PYTHONPATH")]))
    promised = run_until_crash(scene, random.Random(5))
    with pytest.raises(AssertionError, match="lost"):
        check_marker_survived(scene, promised)


def test_three_power_cuts_in_a_row_then_finish(scene):
    rng = random.Random(83)
    promised = RangeSet()
    for _ in range(3):
        before = promised
        promised = run_until_crash(scene, rng)
        assert promised.contains(before), f"a resumed run printed marker {promised} that dropped {before - promised}"
        check_marker_survived(scene, promised)
    resumed, done = resume(scene)
    check_resumed_from(promised, resumed, done)
    assert scene.destination.read_bytes() == scene.data
