"""End to end: the real ``transfercore copy`` into and out of hpss://, killed and resumed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

MiB = 1 << 20
URL_OPTS = "segment=1MiB&block=256KiB"


def copy(src: str, dst: str, journal: Path, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "transfercore", "copy", "--journal", str(journal), "--marker-interval", "1", src, dst],
        env=env, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture
def env(emu_root: Path) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HPSS_EMU_")} | {"HPSS_EMU_ROOT": str(emu_root)}


def test_copy_into_and_out_of_hpss(tmp_path: Path, emu_root: Path, env: dict[str, str]) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 * MiB + 5))
    done = copy(str(src), f"hpss:///in.bin?{URL_OPTS}", tmp_path / "j1", env)
    assert done.returncode == 0, done.stderr
    assert (emu_root / "in.bin").read_bytes() == src.read_bytes()
    back = tmp_path / "back.bin"
    done = copy(f"hpss:///in.bin?{URL_OPTS}", str(back), tmp_path / "j2", env)
    assert done.returncode == 0, done.stderr
    assert back.read_bytes() == src.read_bytes()


def test_sigkill_then_resume_into_hpss(tmp_path: Path, emu_root: Path, env: dict[str, str]) -> None:
    src = tmp_path / "src.bin"
    data = os.urandom(8 * MiB)
    src.write_bytes(data)
    journal = tmp_path / "journal"
    # The movers stop after 5 MiB: the process sits there until it is killed.
    hung = env | {"HPSS_EMU_HANG_AFTER": str(5 * MiB)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "transfercore", "copy", "--journal", str(journal), "--marker-interval", "1",
         str(src), f"hpss:///k.bin?{URL_OPTS}"],
        env=hung, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 20
    target = emu_root / "k.bin"
    while time.monotonic() < deadline and (not target.exists() or target.stat().st_size < 5 * MiB):
        time.sleep(0.1)
    time.sleep(2.5)  # let the engine record a marker past the 5 completed segments
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    done = copy(str(src), f"hpss:///k.bin?{URL_OPTS}", journal, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert target.read_bytes() == data
    resumed = re.search(r"\(([\d.]+ \w+) sent, ([\d.]+ \w+) resumed\)", done.stdout + done.stderr)
    assert resumed is not None, done.stdout
    assert resumed.group(2) != "0 B", done.stdout
