"""Power cuts under the emulated HPSS: what a marker named is on the media.

The emulator's store is a directory; here it lies on the project's power-loss
file system, so a cut keeps exactly what the emulator flushed (its Execute
ends with an ``fdatasync``, its metadata files are fsynced and renamed).  A
marker ``durable()`` returned before the cut must still be there after it,
with one segment executed at a time and with two (``inflight=2``), where a
later segment may be acknowledged before the one before it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hpss_support import KiB, payload
from transfercore_hpss import record
from transfercore_hpss.driver import HpssDriver

from transfercore.ranges import RangeSet
from transfercore.testing.powerloss import PowerLossFS, check_fuse

pytestmark = pytest.mark.fuse

SIZE = 4096 * KiB + 777
PIECE = 128 * KiB


@pytest.fixture
def cut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[PowerLossFS, Path]]:
    """The emulator's store on the power-loss file system: (the file system, the store)."""
    check_fuse()  # FUSE missing fails the test, never skips it
    for name in list(os.environ):
        if name.startswith("HPSS_EMU_"):
            monkeypatch.delenv(name)
    fs = PowerLossFS(tmp_path / "backing", tmp_path / "mnt", host_fsync=False)
    fs.mount()
    try:
        root = tmp_path / "mnt" / "hpss"
        root.mkdir()
        fd = os.open(tmp_path / "mnt", os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        monkeypatch.setenv("HPSS_EMU_ROOT", str(root))
        yield fs, root
    finally:
        with contextlib.suppress(Exception):
            fs.unmount()


@pytest.mark.parametrize("inflight", [1, 2])
@pytest.mark.parametrize("cut_after", [6, 17])
def test_a_power_cut_keeps_every_byte_a_marker_named_and_the_write_resumes(
    cut: tuple[PowerLossFS, Path], inflight: int, cut_after: int
) -> None:
    fs, root = cut
    options = {"block": 64 * KiB, "segment": 256 * KiB, "watchdog": 5.0, "inflight": inflight}
    data = payload(SIZE, seed=inflight + cut_after)
    w = HpssDriver(options=options).open_write("/f", SIZE)
    marker = RangeSet()
    for i, off in enumerate(range(0, SIZE, PIECE)):
        w.write(off, data[off : off + PIECE])
        marker = w.durable()
        if i == cut_after:
            break
    assert marker and marker.end() >= 256 * KiB, "no segment was acknowledged before the cut"
    # The cut: the PIO groups are still moving the later segments.
    fs.crash()
    with contextlib.suppress(Exception):
        w.abort()
    end = marker.end()
    assert marker == RangeSet.span(0, end)
    kept = (root / ".f.tcpart").read_bytes()
    assert len(kept) >= end and kept[:end] == data[:end]
    held = record.load("/.f.tcpart")
    assert held is not None and held.durable >= end
    assert not (root / "f").exists()
    # The same write resumed from the marker ends identical, and only then is it published.
    w2 = HpssDriver(options=options).open_write("/f", SIZE, marker)
    assert w2.resumed == marker
    for off in range(end, SIZE, PIECE):
        w2.write(off, data[off : off + PIECE])
    w2.complete()
    assert (root / "f").read_bytes() == data


def test_a_power_cut_among_small_files_keeps_every_published_one_and_the_rerun_ends_identical(
    cut: tuple[PowerLossFS, Path],
) -> None:
    """Small files are published without a resume record (none was reported before them).
    After a cut every file whose ``complete()`` returned is whole; the file being written
    when the power went, with no record, is not under its name, and a fresh write of it
    takes its partial file over and ends identical."""
    fs, root = cut
    options = {"block": 64 * KiB, "segment": 256 * KiB, "watchdog": 5.0}
    driver = HpssDriver(options=options)
    files = {f"/s{i:02d}": payload(1000 + 997 * i, seed=100 + i) for i in range(24)}
    published: list[str] = []
    for name, data in files.items():
        w = driver.open_write(name, len(data))
        w.write(0, data)
        w.complete()
        published.append(name)
    # the next one is written (no marker asked for), not published, when the power goes
    last = payload(50 * KiB, seed=99)
    w = driver.open_write("/last", len(last))
    w.write(0, last)
    fs.crash()  # the process is gone with the power: no abort() runs before the checks
    for name in published:
        assert (root / name[1:]).read_bytes() == files[name], f"{name} was published before the cut"
        assert not (root / f".{name[1:]}.tcpart").exists()
    assert not (root / "last").exists()
    # its create synced the directory: the partial file is there, without a record
    assert (root / ".last.tcpart").exists() and record.load("/.last.tcpart") is None
    assert driver.partial("/last") == RangeSet()
    # the rerun: a fresh write of the same name ends identical
    again = HpssDriver(options=options).open_write("/last", len(last))
    again.write(0, last)
    again.complete()
    assert (root / "last").read_bytes() == last
    assert not (root / ".last.tcpart").exists()
    w.abort()  # the old writer's descriptor, before the unmount
    assert (root / "last").read_bytes() == last
