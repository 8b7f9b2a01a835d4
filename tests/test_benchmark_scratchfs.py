"""The benchmarks' scratch file systems (``benchmarks/scratchfs.py``) are what they say.

``--fs ext4`` must put a benchmark on a new ext4 with a journal, mounted
until the benchmark ends and then gone with its image; and what a benchmark
prints about its working directory must tell an ext4 without a journal (whose
allocator scans freed inodes after each round's delete) from one with it.
Run as root with loop devices, as the power-loss harness is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import scratchfs  # noqa: E402


def _mounted(path: Path) -> bool:
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        return any(line.split()[1] == str(path) for line in fh)


def test_scratch_without_a_kind_is_the_directory_itself(tmp_path: Path) -> None:
    with scratchfs.scratch_fs(tmp_path, None, 0, "bench") as where:
        assert where == tmp_path
    assert not _mounted(tmp_path)


def test_a_new_ext4_is_mounted_journaled_for_the_block_and_then_gone(tmp_path: Path) -> None:
    with scratchfs.scratch_fs(tmp_path, "ext4", 64 << 20, "bench") as where:
        assert where == tmp_path / "mnt"
        assert _mounted(where)
        assert scratchfs.describe(where) == "ext4"
        (where / "f").write_bytes(b"x" * 4096)
        assert os.stat(where / "f").st_dev != os.stat(tmp_path).st_dev
    assert not _mounted(tmp_path / "mnt")
    assert not (tmp_path / "fs.img").exists()


def test_an_ext4_without_a_journal_is_called_so(tmp_path: Path) -> None:
    image, mnt = tmp_path / "plain.img", tmp_path / "plain"
    with open(image, "wb") as fh:
        fh.truncate(64 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", str(image)], check=True)
    mnt.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
    try:
        said = scratchfs.describe(mnt)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    assert said.startswith("ext4 without a journal"), said
