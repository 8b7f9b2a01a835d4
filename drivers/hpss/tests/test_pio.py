"""PIO behaviour of the emulator as the driver's session sees it."""

from __future__ import annotations

import gc
import os
import re
import shutil
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest
from hpss_support import KiB, payload
from transfercore_hpss import api
from transfercore_hpss._hpss import ffi, lib
from transfercore_hpss.driver import HpssDriver
from transfercore_hpss.pio import PioSession

BLOCK = 64 * KiB


class Recorder:
    """Fills write blocks with a constant and records what HPSS passed in."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[int, int, bool]] = []
        self.fail = fail
        self.buf = ffi.new("char[]", BLOCK)

    def on_block(self, offset: int, length_ptr, buffer_ptr) -> int:
        self.calls.append((offset, int(length_ptr[0]), buffer_ptr[0] == ffi.NULL))
        if self.fail:
            return 1
        if buffer_ptr[0] == ffi.NULL:
            buffer_ptr[0] = self.buf
        ffi.buffer(buffer_ptr[0], length_ptr[0])[:] = b"z" * length_ptr[0]
        return 0


def session(path: str, handler: Recorder) -> tuple[PioSession, int]:
    HpssDriver()._login()
    fd, _ = api.open_file(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    return PioSession(api.PioOperation.WRITE, fd, BLOCK, 1, handler, 5.0, path), fd


def test_first_write_callback_gets_a_null_buffer(emu_root: Path) -> None:
    rec = Recorder()
    pio, fd = session("/n", rec)
    result = pio.execute(0, 3 * BLOCK + 10)
    pio.close()
    api.close(fd)
    assert result.rc == 0 and result.moved == 3 * BLOCK + 10
    assert [null for _, _, null in rec.calls] == [True, False, False, False]
    assert [(o, n) for o, n, _ in rec.calls] == [
        (0, BLOCK),
        (BLOCK, BLOCK),
        (2 * BLOCK, BLOCK),
        (3 * BLOCK, 10),
    ]
    assert (emu_root / "n").read_bytes() == b"z" * (3 * BLOCK + 10)


def test_a_slow_mover_waits_after_each_block_and_still_stores_it(
    emu_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``HPSS_EMU_MOVER_DELAY_US`` (what tests use to keep a transfer running long enough to be
    cut in the middle however fast the machine): a pause after each block, nothing else changed."""
    monkeypatch.setenv("HPSS_EMU_MOVER_DELAY_US", "30000")
    pio, fd = session("/slow", Recorder())
    began = time.monotonic()
    result = pio.execute(0, 3 * BLOCK + 10)
    took = time.monotonic() - began
    pio.close()
    api.close(fd)
    assert result.rc == 0 and result.moved == 3 * BLOCK + 10
    assert took >= 4 * 0.03  # four blocks, each followed by its pause
    assert (emu_root / "slow").read_bytes() == b"z" * (3 * BLOCK + 10)


def test_size_zero_is_an_error_and_register_reports_eio(emu_root: Path) -> None:
    pio, fd = session("/z", Recorder())
    result = pio.execute(0, 0)
    pio.close()
    api.close(fd)
    assert result.rc == api.Code.EINVAL
    assert pio._participant_rc == api.Code.EIO


@pytest.mark.parametrize(
    ("version", "code"), [("7.4.3", api.Code.EIO), ("7.5.3", api.Code.ECONN), ("10.3.0", api.Code.ECONN)]
)
def test_callback_failure_code_depends_on_version(
    emu_root: Path, monkeypatch: pytest.MonkeyPatch, version: str, code: int
) -> None:
    monkeypatch.setenv("HPSS_EMU_VERSION", version)
    pio, fd = session("/c", Recorder(fail=True))
    result = pio.execute(0, BLOCK)
    pio.close()
    api.close(fd)
    assert result.rc == code
    assert api.version().text == version
    # 7.4 leaves BytesMoved unset on error (BZ4719); later versions set it.
    assert result.moved == (None if version.startswith("7.4") else 0)


def test_participant_buffer_smaller_than_block_is_an_error(emu_root: Path) -> None:
    HpssDriver()._login()
    params = ffi.new("hpss_pio_params_t *")
    params.Operation, params.ClntStripeWidth, params.BlockSize = lib.HPSS_PIO_WRITE, 1, BLOCK
    coord, part = lib.tc_pio_grp_new(), lib.tc_pio_grp_new()
    assert lib.hpss_PIOStart(params, coord) == 0
    buf, length = ffi.new("void **"), ffi.new("unsigned int *")
    assert lib.tc_PIOExportGrp(coord, buf, length) == 0
    assert lib.hpss_PIOImportGrp(buf[0], length[0], part) == 0
    lib.free(buf[0])
    small = ffi.new("char[]", BLOCK // 2)
    # Returns at once instead of hanging as a real HPSS would.
    assert lib.tc_PIORegister(0, small, BLOCK // 2, part, lib._tc_pio_callback, ffi.NULL) == api.Code.EINVAL
    assert lib.tc_PIOEnd(coord) == 0 and lib.tc_PIOEnd(part) == 0
    assert lib.tc_PIOEnd(coord) == api.Code.EINVAL  # a group ends once
    for p in (coord, part):
        lib.free(p)


def test_api_refuses_a_second_participant_and_bad_export(emu_root: Path) -> None:
    HpssDriver()._login()
    group = lib.tc_pio_grp_new()
    assert lib.hpss_PIOImportGrp(b"not a group\0", 12, group) == api.Code.EINVAL
    lib.free(group)


def test_written_data_through_session_matches(emu_root: Path) -> None:
    data = payload(5 * BLOCK)
    d = HpssDriver(options={"block": BLOCK, "segment": 2 * BLOCK})
    w = d.open_write("/p", len(data))
    w.write(0, data)
    w.complete()
    assert (emu_root / "p").read_bytes() == data


def test_a_closed_session_is_freed_without_the_garbage_collector(emu_root: Path) -> None:
    pio, fd = session("/freed", Recorder())
    pio.execute(0, BLOCK)
    pio.close()
    api.close(fd)
    gone = weakref.ref(pio)
    gc.disable()
    try:
        del pio
        # The participant and watchdog threads hold the session until they end.
        deadline = time.monotonic() + 20
        while gone() is not None and time.monotonic() < deadline:
            time.sleep(0.02)  # polling for the threads to end, with a deadline
        assert gone() is None, "a closed PIO session (and its block buffer) waits for the garbage collector"
    finally:
        gc.enable()


_STREAMING_CHILD = """
import sys
from transfercore_hpss.driver import HpssDriver
block = int(sys.argv[1])
data = bytes(range(256)) * (5 * block // 256)
w = HpssDriver(options={"block": block, "segment": 2 * block}).open_write("/streamed", len(data))
w.write(0, data)
w.complete()
"""


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace (.ci/debian-packages.txt installs it)")
@pytest.mark.parametrize("behind", [True, False])
def test_a_mover_streams_each_block_to_its_media_and_syncs_before_execute_returns(
    emu_root: Path, tmp_path: Path, behind: bool
) -> None:
    """As a disk mover writes what it receives, the emulator starts each block's
    write-back at once (HPSS_EMU_WRITE_BEHIND=0 leaves it to the sync); either
    way an Execute returns only after its bytes went through fdatasync."""
    env = {**os.environ, "HPSS_EMU_WRITE_BEHIND": "1" if behind else "0"}
    trace = tmp_path / "trace"
    subprocess.run(
        ["strace", "-f", "-qq", "-y", "-o", str(trace), "-e", "trace=pwrite64,sync_file_range,fdatasync",
         sys.executable, "-c", _STREAMING_CHILD, str(BLOCK)],
        env=env, check=True, timeout=60,
    )
    # -y names each descriptor's file: only the calls on the data file (the partial name) count
    calls = re.finditer(r"(pwrite64|sync_file_range|fdatasync)\(\d+<([^>]*)>", trace.read_text())
    seq = [m.group(1) for m in calls if m.group(2).endswith("/.streamed.tcpart")]
    # 5 blocks in segments of 2: every Execute (2, 2, 1 blocks) ends in one fdatasync
    per_block = ["pwrite64", "sync_file_range"] if behind else ["pwrite64"]
    segment = [*per_block, *per_block, "fdatasync"]
    assert seq == [*segment, *segment, *per_block, "fdatasync"]
    assert (emu_root / "streamed").read_bytes() == bytes(range(256)) * (5 * BLOCK // 256)
