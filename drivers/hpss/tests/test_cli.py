"""End to end: the real ``transfercore copy`` into and out of hpss://, killed or
failed by an injected PIO fault, and resumed.

The kill tests follow ``copy --json`` and send SIGKILL only once a restart
marker past a given point was printed (the engine prints a marker after it
is in the journal).  An emulator fault stops the movers later in the file,
so the copy cannot finish before the kill.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

MiB = 1 << 20
URL_OPTS = "segment=1MiB&block=256KiB"
SIZE = 8 * MiB
HANG_AT = 6 * MiB
KILL_PAST = 3 * MiB


def command(src: str, dst: str, journal: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "transfercore",
        "copy",
        "--json",
        "--journal",
        str(journal),
        "--marker-interval",
        "1",
        "--marker-bytes",
        "2MiB",
        "--block-size",
        "256KiB",
        src,
        dst,
    ]


def copy(src: str, dst: str, journal: Path, env: dict[str, str], timeout: float = 60) -> list[dict[str, Any]]:
    done = subprocess.run(
        command(src, dst, journal), env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def kill_after_marker(cmd: list[str], env: dict[str, str], past: int, timeout: float = 30) -> int:
    """Run ``cmd``, SIGKILL it as soon as it prints a marker of more than ``past``
    bytes; returns that marker's durable bytes."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    seen: list[str] = []
    try:
        deadline = time.monotonic() + timeout
        pending = b""
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, left))
            if not ready:
                pytest.fail(f"no marker past {past} within {timeout} s: {seen}")
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                pytest.fail(f"the copy ended before a marker past {past}: {seen} {proc.stderr.read()!r}")
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                seen.append(line.decode())
                event = json.loads(line)
                if event["event"] == "marker" and event["durable_bytes"] > past:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(timeout=10)
                    assert proc.returncode == -signal.SIGKILL
                    return int(event["durable_bytes"])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def event(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(e for e in events if e["event"] == kind)


@pytest.fixture
def env(emu_root: Path) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HPSS_EMU_")} | {
        "HPSS_EMU_ROOT": str(emu_root)
    }


def test_copy_into_and_out_of_hpss(tmp_path: Path, emu_root: Path, env: dict[str, str]) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 * MiB + 5))
    copy(str(src), f"hpss:///in.bin?{URL_OPTS}", tmp_path / "j1", env)
    assert (emu_root / "in.bin").read_bytes() == src.read_bytes()
    back = tmp_path / "back.bin"
    copy(f"hpss:///in.bin?{URL_OPTS}", str(back), tmp_path / "j2", env)
    assert back.read_bytes() == src.read_bytes()


def test_sigkill_then_resume_into_hpss(tmp_path: Path, emu_root: Path, env: dict[str, str]) -> None:
    src = tmp_path / "src.bin"
    data = os.urandom(SIZE)
    src.write_bytes(data)
    journal = tmp_path / "journal"
    dst = f"hpss:///k.bin?{URL_OPTS}"
    # The movers stop at 6 MiB: the copy cannot finish before it is killed.
    hung = env | {"HPSS_EMU_HANG_AFTER": str(HANG_AT)}
    marker = kill_after_marker(command(str(src), dst, journal), hung, KILL_PAST)
    assert KILL_PAST < marker <= HANG_AT
    events = copy(str(src), dst, journal, env)
    assert (emu_root / "k.bin").read_bytes() == data
    # The journal may hold a later marker than the one printed before the kill.
    resumed = event(events, "resumed")["bytes"]
    assert marker <= resumed <= HANG_AT
    assert event(events, "done")["bytes_resumed"] == resumed
    assert event(events, "done")["bytes_sent"] == SIZE - resumed


def test_sigkill_then_resume_out_of_hpss(tmp_path: Path, emu_root: Path, env: dict[str, str]) -> None:
    data = os.urandom(SIZE)
    (emu_root / "out.bin").write_bytes(data)
    journal = tmp_path / "journal"
    src = f"hpss:///out.bin?{URL_OPTS}"
    dst = tmp_path / "copy.bin"
    # Reading stops at 6 MiB: the copy cannot finish before it is killed.
    hung = env | {"HPSS_EMU_READ_HANG_AFTER": str(HANG_AT)}
    marker = kill_after_marker(command(src, str(dst), journal), hung, KILL_PAST)
    assert KILL_PAST < marker <= HANG_AT
    events = copy(src, str(dst), journal, env)
    assert dst.read_bytes() == data
    resumed = event(events, "resumed")["bytes"]
    assert marker <= resumed <= HANG_AT
    assert event(events, "done")["bytes_sent"] == SIZE - resumed


FAULT_AT = 5 * MiB + 100_000


@pytest.mark.parametrize(
    ("fault", "durable"),
    [
        # HPSS >= 7.5 sets BytesMoved on error: the marker reaches the failure point.
        ({"HPSS_EMU_FAIL_AFTER": str(FAULT_AT)}, FAULT_AT),
        # The file rolled back before the failure point: BytesMoved says so.
        ({"HPSS_EMU_FAIL_AFTER": str(FAULT_AT), "HPSS_EMU_ROLLBACK": "60000"}, FAULT_AT - 60_000),
        # BZ4719: BytesMoved unset on error, so only the last completed segment is trusted.
        ({"HPSS_EMU_FAIL_AFTER": str(FAULT_AT), "HPSS_EMU_VERSION": "7.4.3"}, 5 * MiB),
    ],
    ids=["fail", "fail-and-roll-back", "fail-with-bz4719"],
)
def test_injected_pio_fault_then_the_same_command_resumes(
    tmp_path: Path, emu_root: Path, env: dict[str, str], fault: dict[str, str], durable: int
) -> None:
    src = tmp_path / "src.bin"
    data = os.urandom(SIZE)
    src.write_bytes(data)
    journal = tmp_path / "journal"
    dst = f"hpss:///f.bin?{URL_OPTS}"
    failed = subprocess.run(
        command(str(src), dst, journal), env=env | fault, capture_output=True, text=True, timeout=60
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    events = [json.loads(line) for line in failed.stdout.splitlines()]
    error = event(events, "error")
    assert error["durable_bytes"] == durable
    assert all(e["durable_bytes"] <= durable for e in events if e["event"] == "marker")
    again = copy(str(src), dst, journal, env)
    resumed = event(again, "resumed")
    assert resumed["bytes"] == durable
    assert event(again, "done")["bytes_sent"] == SIZE - durable
    assert (emu_root / "f.bin").read_bytes() == data


def test_a_damaged_segment_is_never_left_under_the_final_name(
    tmp_path: Path, emu_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mover that damages one byte: the read-back before completion finds it, exit 3,
    and nothing shows under the final name: the refused bytes stay under the partial name."""
    from transfercore.cli import main
    from transfercore.cli.exitcodes import ExitCode

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("HPSS_EMU_CORRUPT_AT", str(3 * MiB + 5))
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(4 * MiB))
    code = main(["copy", "--block-size", "256KiB", "--checksum", "md5", str(src), f"hpss:///out.bin?{URL_OPTS}"])
    err = capsys.readouterr().err
    assert code == ExitCode.CHECKSUM_MISMATCH == 3
    assert "nothing was published; the partial object was kept for inspection" in err
    assert not (emu_root / "out.bin").exists()
    assert (emu_root / ".out.bin.tcpart").stat().st_size == 4 * MiB
    # The same command, once the mover is mended, sends the file in full and it verifies.
    monkeypatch.delenv("HPSS_EMU_CORRUPT_AT")
    assert main(["copy", "--block-size", "256KiB", "--checksum", "md5", str(src), f"hpss:///out.bin?{URL_OPTS}"]) == 0
    assert (emu_root / "out.bin").read_bytes() == src.read_bytes()
    assert not (emu_root / ".out.bin.tcpart").exists()


def test_a_tree_copy_never_shows_a_refused_file_under_its_final_name(
    tmp_path: Path, emu_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``copy -r`` into hpss://: the file a damaged mover spoiled is refused and stays hidden
    under its partial name while the others are published; the rerun publishes it whole."""
    from transfercore.cli import main

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"small")
    (src / "sub" / "b.txt").write_bytes(b"also small")
    (src / "big.bin").write_bytes(os.urandom(3 * MiB))
    (emu_root / "out").mkdir()
    monkeypatch.setenv("HPSS_EMU_CORRUPT_AT", str(2 * MiB + 5))
    dst = f"hpss:///out?{URL_OPTS}"
    assert main(["copy", "-r", str(src), dst]) != 0
    assert "big.bin" in capsys.readouterr().err
    assert not (emu_root / "out" / "big.bin").exists()
    assert (emu_root / "out" / ".big.bin.tcpart").exists()
    assert (emu_root / "out" / "a.txt").read_bytes() == b"small"
    from transfercore_hpss.driver import HpssDriver

    assert sorted(i.name for i in HpssDriver().list("/out")) == ["a.txt", "sub"]
    monkeypatch.delenv("HPSS_EMU_CORRUPT_AT")
    os.chmod(src / "sub", 0o750)
    os.utime(src / "sub", (1_600_000_000.5, 1_600_000_000.5))
    assert main(["copy", "-r", str(src), dst]) == 0
    err = capsys.readouterr().err
    assert "big.bin" not in err and "not kept" not in err
    # Directory modes and times through hpss_Chmod and hpss_Utime (whole seconds).
    st = (emu_root / "out" / "sub").stat()
    assert (st.st_mode & 0o7777, st.st_mtime_ns) == (0o750, 1_600_000_000 * 10**9)
    assert (emu_root / "out" / "big.bin").read_bytes() == (src / "big.bin").read_bytes()
    assert (emu_root / "out" / "sub" / "b.txt").read_bytes() == b"also small"
    assert sorted(p.name for p in (emu_root / "out").iterdir()) == ["a.txt", "big.bin", "sub"]


def test_checksum_md5_stores_the_hpsssum_attributes_of_what_was_read_back(
    tmp_path: Path, emu_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--checksum md5``: the verification's read-back of the stored bytes is
    hashed on the way, and the MD5 lands Valid in hpsssum's attributes with the
    name, for one file and for every file of a tree."""
    import hashlib

    from transfercore_hpss import checksum

    from transfercore.cli import main

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    src = tmp_path / "one.bin"
    src.write_bytes(os.urandom(3 * MiB + 17))
    assert main(["copy", "--block-size", "256KiB", "--checksum", "md5", str(src), f"hpss:///one.bin?{URL_OPTS}"]) == 0
    stored = checksum.read_all("/one.bin")
    assert stored["state"] == "Valid" and stored["algorithm"] == "md5"
    assert stored["checksum"] == hashlib.md5(src.read_bytes()).hexdigest()
    assert stored["filesize"] == str(src.stat().st_size) and stored["app"] == "transfercore"
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "small").write_bytes(b"small file")
    (tree / "big").write_bytes(os.urandom(2 * MiB))
    (emu_root / "out").mkdir()
    assert main(["copy", "-r", "--checksum", "md5", "--whole-file-max", "1M", str(tree), f"hpss:///out?{URL_OPTS}"]) == 0
    for rel in ("sub/small", "big"):
        stored = checksum.read_all(f"/out/{rel}")
        assert stored["state"] == "Valid", rel
        assert stored["checksum"] == hashlib.md5((tree / rel).read_bytes()).hexdigest(), rel


def test_a_tree_with_a_name_hpss_cannot_store_says_so_and_fails(
    tmp_path: Path, emu_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from transfercore.cli import main

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    src = os.fsencode(tmp_path / "tree")
    os.makedirs(src + b"/dir-\xe9")
    with open(src + b"/ok.txt", "wb") as f:
        f.write(b"fine")
    with open(src + b"/caf\xe9", "wb") as f:
        f.write(b"latin-1 name")
    (emu_root / "out").mkdir()
    assert main(["copy", "-r", os.fsdecode(src), f"hpss:///out?{URL_OPTS}"]) == 1
    err = capsys.readouterr().err
    # the file and the directory, each as it failed and in the final list
    assert "2 of the tree's entries failed" in err
    assert err.count("not valid UTF-8 and the destination cannot store it") == 4
    assert "  caf\\xe9: the name is not valid UTF-8" in err and "  dir-\\xe9: the name" in err
    assert (emu_root / "out" / "ok.txt").read_bytes() == b"fine"
    assert sorted(p.name for p in (emu_root / "out").iterdir()) == ["ok.txt"]
