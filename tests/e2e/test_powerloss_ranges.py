"""``transfercore copy --ranges`` onto a file system that loses power mid-copy.

The destination lives in a mounted :class:`PowerLossFS`: what was not synced
is gone after :meth:`PowerLossFS.crash`, as after a power cut.  Several range
writers write one file at once; every range reported done (``range-done``:
its writer made the whole range durable) before the cut is a promise: after
the cut the union read back from the writers' records must still hold it,
with the source's bytes, and the next run must resume it without writing it
again.  The source is a mock store with slowed reads, so the cut lands while
ranges are being written.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from transfercore.ranges import RangeSet
from transfercore.registry import open_location
from transfercore.testing.powerloss import PowerLossFS, check_fuse

pytestmark = pytest.mark.fuse

MiB = 1024 * 1024
SIZE = 12 * MiB
RANGE = 1 * MiB
SLOW = 0.02
TIMEOUT = 90


@pytest.fixture
def scene(tmp_path):
    check_fuse()  # FUSE missing must fail the test, never skip it
    data = random.Random(20261205).randbytes(SIZE)
    store = tmp_path / "store"
    store.mkdir()
    endpoint = open_location(f"mock://plrsrc/obj?dir={store}")
    writer = endpoint.driver.open_write("/obj", SIZE)
    writer.write(0, data)
    writer.complete()
    endpoint.driver.close()
    fs = PowerLossFS(tmp_path / "backing", tmp_path / "mnt", host_fsync=False)
    fs.mount()
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    try:
        yield Scene(data, f"mock://plrsrc/obj?dir={store}&slow={SLOW}", fs, env)
    finally:
        if fs.mounted:
            fs.crash(remount=False)


class Scene:
    def __init__(self, data: bytes, source: str, fs: PowerLossFS, env: dict[str, str]) -> None:
        self.data, self.source, self.fs, self.env = data, source, fs, env

    @property
    def destination(self) -> Path:
        return Path(self.fs.mountpoint) / "out.bin"

    def start(self) -> subprocess.Popen[str]:
        cmd = [sys.executable, "-m", "transfercore", "copy", self.source, str(self.destination), "--json",
               "--range-size", str(RANGE), "--range-workers", "3", "--block-size", "128K", "--marker-bytes", "256K"]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env)

    def durable(self) -> RangeSet:
        endpoint = open_location(str(self.destination))
        try:
            return endpoint.driver.durable_ranges(endpoint.path, SIZE)
        finally:
            endpoint.driver.close()

    def partial_file(self) -> Path:
        found = sorted(Path(self.fs.mountpoint).glob(".out.bin.*.tcpart"))
        assert len(found) == 1, f"expected one shared partial file after the cut, found {found}"
        return found[0]


def run_until_cut(scene: Scene, after: int) -> RangeSet:
    """Start a ranged copy and cut the power once ``after`` ranges were reported done."""
    proc = scene.start()
    assert proc.stdout is not None
    promised = RangeSet()
    done = 0
    for line in proc.stdout:
        event = json.loads(line)
        assert event["event"] != "complete", "the copy finished before the cut"
        if event["event"] == "range-done":
            promised = promised | RangeSet.span(event["start"], event["end"])
            done += 1
            if done >= after:
                break
    scene.fs.crash()
    _rest, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode != 0, f"the copy succeeded across a power cut: {err}"
    assert done >= after, f"only {done} ranges done before the copy ended: {err}"
    return promised


def check_promise_kept(scene: Scene, promised: RangeSet) -> RangeSet:
    union = scene.durable()
    assert union.contains(promised), f"the union read back after the cut, {union}, lost {promised - union}"
    with open(scene.partial_file(), "rb") as fh:
        for r in union:
            fh.seek(r.start)
            assert fh.read(r.length) == scene.data[r.start:r.end], f"bytes {r} claimed durable were lost"
    return union


@pytest.mark.parametrize("after", [2, 5])
def test_power_cut_during_a_ranged_copy_loses_no_range_reported_durable(scene, after):
    promised = run_until_cut(scene, after)
    union = check_promise_kept(scene, promised)
    proc = scene.start()
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    planned = [e for e in events if e["event"] == "ranges-planned"][0]
    complete = [e for e in events if e["event"] == "complete"][0]
    assert planned["durable_bytes"] == union.total() >= promised.total()
    assert complete["bytes_written"] == SIZE - union.total()
    assert scene.destination.read_bytes() == scene.data
    assert [p.name for p in Path(scene.fs.mountpoint).iterdir()] == ["out.bin"]
    scene.fs.crash()  # published durable: it survives the next cut too
    assert scene.destination.read_bytes() == scene.data


def test_the_check_catches_range_writers_that_never_sync(scene, tmp_path):
    hooks = tmp_path / "nosync"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text("import os\nos.fsync = os.fdatasync = lambda fd: None\n")
    scene.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hooks), scene.env.get("PYTHONPATH")]))
    promised = run_until_cut(scene, 3)
    with pytest.raises(AssertionError, match="lost|expected one shared partial file"):
        check_promise_kept(scene, promised)
