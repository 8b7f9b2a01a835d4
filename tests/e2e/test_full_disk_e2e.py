"""A full file system keeps what is durable: a real tmpfs of a few MiB fills up mid-copy.

The writer makes room for its resume record by giving up its newest unmarked
bytes, so the failure leaves a marker; once space is freed (the tmpfs is
grown in place), the same command resumes instead of starting from zero.
"""

import json
import os
import random
import subprocess
import sys

import pytest
from transfercore_posix.driver import PosixDriver

from transfercore.errors import NoSpace
from transfercore.ranges import RangeSet

MiB = 1024 * 1024
TIMEOUT = 120


@pytest.fixture
def small_fs(tmp_path):
    """A real 8 MiB tmpfs, unmounted afterwards (root only)."""
    where = tmp_path / "fs"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(where)],
                             capture_output=True, text=True, timeout=30)
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs here (the tests run as root, as CI does): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)


def grow(where, size="32m"):
    subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True, timeout=30)


def test_the_writer_keeps_a_marker_when_the_file_system_fills(small_fs):
    driver = PosixDriver()
    path = str(small_fs / "obj.bin")
    writer = driver.open_write(path, 16 * MiB)
    block = b"z" * MiB
    written = RangeSet()
    with pytest.raises(NoSpace):
        for i in range(16):
            writer.write(i * MiB, block)
            written |= RangeSet.span(i * MiB, (i + 1) * MiB)
    marker = writer.durable()
    assert marker.total() > 0 and written.contains(marker)
    assert marker.total() >= written.total() - MiB  # at most the room for the record is given up
    writer.abort()
    assert driver.partial(path) == marker  # the storage itself says what is there
    grow(small_fs)
    again = driver.open_write(path, 16 * MiB, resume=marker)
    assert again.resumed == marker
    for r in marker.complement(16 * MiB):
        for start in range(r.start, r.end, MiB):
            end = min(r.end, start + MiB)
            again.write(start, block[: end - start])
    again.complete()
    assert open(path, "rb").read() == b"z" * 16 * MiB


def _copy(src, dst, journal):
    return subprocess.run([sys.executable, "-m", "transfercore", "copy", str(src), str(dst), "--json",
                           "--journal", str(journal), "--block-size", "1M"],
                          capture_output=True, text=True, timeout=TIMEOUT)


def test_a_copy_into_a_full_file_system_resumes_after_space_is_freed(small_fs, tmp_path):
    data = random.Random(3).randbytes(16 * MiB)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    dst = small_fs / "out.bin"
    journal = tmp_path / "j.sqlite"
    first = _copy(src, dst, journal)
    assert first.returncode == 1, first.stderr
    (line,) = first.stderr.splitlines()  # the cause, once
    assert "No space left on device" in line and "durable" in line and "free space" in line
    (failed,) = [e for e in map(json.loads, first.stdout.splitlines()) if e["event"] == "error"]
    assert failed["error"] == "NoSpace" and failed["resumable"] and failed["durable_bytes"] >= 4 * MiB
    assert not dst.exists()
    status = subprocess.run([sys.executable, "-m", "transfercore", "status", "--json", "--journal", str(journal)],
                            capture_output=True, text=True, timeout=TIMEOUT)
    (entry,) = json.loads(status.stdout)["files"]
    assert entry["state"] == "failed" and entry["durable_bytes"] == failed["durable_bytes"]
    grow(small_fs)
    second = _copy(src, dst, journal)
    assert second.returncode == 0, second.stderr
    events = [json.loads(x) for x in second.stdout.splitlines()]
    (resumed,) = [e for e in events if e["event"] == "resumed"]
    assert resumed["bytes"] == failed["durable_bytes"]
    (done,) = [e for e in events if e["event"] == "done"]
    assert done["bytes_sent"] == len(data) - resumed["bytes"]
    assert dst.read_bytes() == data
    assert sorted(os.listdir(small_fs)) == ["out.bin"]


def test_a_quota_error_on_the_record_takes_the_same_path(tmp_path, monkeypatch):
    """EDQUOT (QuotaExceeded, a NoSpace) while storing the record: room is made the same way."""
    from transfercore_posix import writer as writer_module

    from transfercore.errors import QuotaExceeded

    real_store = writer_module.sidecar.store
    calls = []

    def store_once_over_quota(directory, name, record):
        calls.append(record.ranges)
        if len(calls) == 1:
            raise QuotaExceeded("cannot write the resume record: Disk quota exceeded", errno=122)
        real_store(directory, name, record)

    monkeypatch.setattr(writer_module.sidecar, "store", store_once_over_quota)
    driver = PosixDriver()
    path = str(tmp_path / "obj.bin")
    writer = driver.open_write(path, 4 * MiB)
    writer.write(0, b"q" * (3 * MiB))
    marker = writer.durable()
    assert calls[0] == RangeSet.span(0, 3 * MiB) and marker == RangeSet.span(0, 2 * MiB)
    assert os.stat(writer.partial_path).st_blocks * 512 <= 2 * MiB + 64 * 1024  # the given-up MiB is freed
    writer.abort()
    assert driver.partial(path) == marker


def test_a_tree_into_a_full_file_system_says_so_once_and_leaves_no_litter(small_fs, tmp_path):
    """Every file after the disk fills would fail the same way: the copy stops
    handing them out, says the cause in one line, and small files' partial
    writes are removed (a rerun writes them whole again)."""
    rng = random.Random(5)
    src = tmp_path / "src"
    for d in range(6):
        (src / f"d{d}").mkdir(parents=True)
        for i in range(300):
            (src / f"d{d}" / f"f{i}").write_bytes(rng.randbytes(4000 + i))
    (src / "big").write_bytes(rng.randbytes(3 * MiB))
    dst = small_fs / "dst"
    journal = tmp_path / "j.sqlite"
    cmd = [sys.executable, "-m", "transfercore", "copy", "-r", str(src), str(dst), "--journal", str(journal),
           "--whole-file-max", "256K"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    assert first.returncode == 1, first.stderr
    lines = first.stderr.splitlines()
    assert len(lines) == 1, first.stderr  # the whole of it, if a run ever says more
    (line,) = lines
    assert "the destination is full" in line and "No space left on device" in line and "free space" in line
    litter = [p for p in dst.rglob(".*") if ".tcpart" in p.name and not p.name.startswith(".big.")]
    assert litter == []
    grow(small_fs)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    assert second.returncode == 0, second.stderr
    for p in src.rglob("*"):
        if p.is_file():
            assert (dst / p.relative_to(src)).read_bytes() == p.read_bytes()
    assert [p for p in dst.rglob(".*")] == []
