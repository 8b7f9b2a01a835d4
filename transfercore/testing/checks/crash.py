"""Durability across crashes: in process, by killing a child process, and by power loss.

Every variant runs the same schedule: write some pieces, take a marker, write
more pieces that are not yet durable, crash, resume from the marker, repeat,
and finally complete.  The object must equal the source, and above all no byte
covered by a reported marker may have been lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from transfercore.capabilities import RestartModel
from transfercore.contract import Driver, Writer
from transfercore.errors import RestartRejected
from transfercore.ranges import ByteRange, RangeSet

from ..clause import Clause, Disabled, NotRun, Violation, require
from ..subject import Subject, describe_ranges, differing, pattern

#: Crashes per schedule: enough to crash a resumed writer too.
CRASHES = 3


def _restartable(s: Subject) -> str | None:
    return "driver declares restart=none: it reports no markers" if s.caps.restart is RestartModel.NONE else None


def _split_round(s: Subject, todo: list[ByteRange]) -> tuple[list[ByteRange], list[ByteRange], list[ByteRange]]:
    """(made durable, written but not durable, not written) for one round before a crash."""
    # at least one piece is durable and, when there are two, one is written but not durable
    crash_after = s.random.randint(min(2, len(todo)), len(todo))
    sync_after = s.random.randint(1, max(1, crash_after - 1))
    return todo[:sync_after], todo[sync_after:crash_after], todo[crash_after:]


def _reopen(driver: Driver, path: str, size: int, marker: RangeSet, when: str) -> Writer:
    try:
        return driver.open_write(path, size, resume=marker or None)
    except RestartRejected as exc:
        raise Violation(f"{when}: the marker {marker} reported before the crash was rejected on resume: {exc}") from exc


def _verify(s: Subject, driver: Driver, path: str, data: bytes, markers: list[RangeSet], story: list[str]) -> None:
    got = s.read_back(path, driver)
    bad = differing(data, got)
    marked = RangeSet()
    for m in markers:
        marked = marked | m
    lost = bad & marked
    history = "; ".join(story)
    require(not lost, f"{describe_ranges(lost)} covered by reported markers were lost ({history})")
    require(not bad, f"the object differs from the source at {describe_ranges(bad)} ({history})")


def run_schedule(
    s: Subject, driver: Driver, path: str, data: bytes, crash: Callable[[Writer], Driver], label: str
) -> str:
    """Crash ``CRASHES`` times at random points in one object's write, then complete it."""
    size = len(data)
    marker = RangeSet()
    markers: list[RangeSet] = []
    story: list[str] = []
    for round_no in range(CRASHES + 1):
        when = f"{label}, crash {round_no}" if round_no else label
        writer = _reopen(driver, path, size, marker, when)
        todo = s.pieces(marker.complement(size))
        if round_no == CRASHES or len(todo) < 2:
            for piece in todo:
                writer.write(piece.start, data[piece.start : piece.end])
            writer.complete()
            writer.close()
            break
        synced, unsynced, _ = _split_round(s, todo)
        for piece in synced:
            writer.write(piece.start, data[piece.start : piece.end])
        new = writer.durable()
        require(new.contains(marker), f"{when}: a resumed writer's marker {new} lost part of the resumed {marker}")
        for piece in unsynced:
            writer.write(piece.start, data[piece.start : piece.end])
        markers.append(new)
        marker = new
        story.append(f"marker {marker or 'empty'}, then {sum(p.length for p in unsynced)} bytes not durable, crash")
        driver = crash(writer)
    _verify(s, driver, path, data, markers, story)
    return f"{len(story)} crashes: " + "; ".join(story)


# --- in process -----------------------------------------------------------------------


def check_durable(s: Subject) -> str:
    data = s.data()
    path = s.new_path("durable")
    if s.caps.crash_simulation:
        def crash(_writer: Writer) -> Driver:
            s.driver.simulate_crash()
            return s.driver

        return "simulate_crash(): " + run_schedule(s, s.driver, path, data, crash, "simulated crash")
    return "killed child process: " + _child_schedule(s, path, data)


# --- a child process killed with SIGKILL ------------------------------------------------


def child_round(s: Subject, path: str, seed: int, size: int, resume: RangeSet,
                 synced: list[ByteRange], unsynced: list[ByteRange], *, durable: bool = True) -> RangeSet:
    """Run a writer in a child process and SIGKILL it once it holds ``unsynced`` written after the
    marker it returns (with ``durable`` false, no ``durable()`` is called and the marker is empty)."""
    job = {
        "url": str(s.location), "path": path, "size": size, "seed": seed, "resume": str(resume),
        "synced": [[p.start, p.end] for p in synced], "unsynced": [[p.start, p.end] for p in unsynced],
        "durable": durable,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "transfercore.testing.crashchild", json.dumps(job)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )
    marker: RangeSet | None = None
    try:
        deadline = time.monotonic() + 120
        buffer = b""
        while True:
            remaining = deadline - time.monotonic()
            require(remaining > 0, "the writer in the child process did not report within 120 s")
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], remaining)
            chunk = os.read(proc.stdout.fileno(), 65536) if ready else b""
            if ready and not chunk:
                err = proc.stderr.read().decode(errors="replace")[-2000:]  # type: ignore[union-attr]
                raise Violation(f"the writer in the child process failed before the crash: {err}")
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                message = json.loads(line)
                if "marker" in message:
                    marker = RangeSet.parse(message["marker"]) if message["marker"] else RangeSet()
                if message.get("holding"):
                    assert marker is not None
                    return marker
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _child_schedule(s: Subject, path: str, data: bytes) -> str:
    seed = s.random.randrange(2**32)
    data = pattern(seed, len(data))
    size = len(data)
    marker = RangeSet()
    markers: list[RangeSet] = []
    story: list[str] = []
    for round_no in range(CRASHES):
        todo = s.pieces(marker.complement(size))
        if len(todo) < 2:
            break
        synced, unsynced, _ = _split_round(s, todo)
        if round_no:
            # the child opens with the marker; rejecting it is the violation
            _reopen(s.fresh_driver(), path, size, marker, f"killed child, crash {round_no}").abort()
        new = child_round(s, path, seed, size, marker, synced, unsynced)
        require(new.contains(marker), f"a resumed writer's marker {new} lost part of the resumed {marker}")
        markers.append(new)
        marker = new
        story.append(f"marker {marker or 'empty'}, then {sum(p.length for p in unsynced)} bytes not durable, SIGKILL")
    driver = s.fresh_driver()
    writer = _reopen(driver, path, size, marker, f"killed child, crash {len(story)}")
    for piece in s.pieces(marker.complement(size)):
        writer.write(piece.start, data[piece.start : piece.end])
    writer.complete()
    writer.close()
    _verify(s, driver, path, data, markers, story)
    return f"{len(story)} kills: " + "; ".join(story)


# --- power loss on the FUSE file system ---------------------------------------------------


def power_loss_applies(s: Subject) -> str | None:
    if s.caps.restart is RestartModel.NONE:
        return "driver declares restart=none: it reports no markers"
    if s.driver.local_path(f"{s.base}/probe") is None:
        return "driver does not store objects as local files (its local_path() returns None)"
    return None


def check_power_loss(s: Subject) -> str:
    if not s.options.power_loss:
        raise Disabled("switched off by the person running the kit (--no-power-loss)")
    from ..powerloss import PowerLossFS, check_fuse
    from ..powerloss.mount import FuseUnavailable

    try:
        check_fuse()
    except FuseUnavailable as exc:
        # The machine lacks FUSE; the driver is not to blame, and nothing was proven either.
        raise NotRun(f"{exc.args[0]}: {exc.hint}, or pass --no-power-loss to switch the clause off") from None
    mount_path = s.new_path("power-loss")
    mountpoint = s.driver.local_path(mount_path)
    assert mountpoint is not None  # power_loss_applies() checked it
    os.mkdir(mountpoint)
    backing = tempfile.mkdtemp(prefix="transfercore-powerloss-")
    fs = PowerLossFS(backing, mountpoint)
    try:
        fs.mount()
        path = f"{mount_path}/object"
        data = s.data()

        def crash(writer: Writer) -> Driver:
            fs.crash(remount=False)
            # Let go of the dead mount before mounting again, as a rebooted
            # machine has no old file descriptors.
            with contextlib.suppress(Exception):
                writer.abort()
            fs.mount()
            return s.fresh_driver()

        return "power loss: " + run_schedule(s, s.fresh_driver(), path, data, crash, "power loss")
    finally:
        if fs.mounted:
            fs.crash(remount=False)
        shutil.rmtree(backing, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(mountpoint)


CLAUSES = (
    Clause(
        "durable",
        "After durable() and a crash (simulated in process where the driver declares crash_simulation, "
        "otherwise a SIGKILLed child process holding the writer), every byte of the marker survives "
        "and the driver accepts the marker.",
        check_durable,
        _restartable,
    ),
    Clause(
        "durable-power-loss",
        "For drivers storing local files: on a file system that loses everything not fsynced "
        "(files) or whose directory was not fsynced (names), no marked byte is lost across power cuts.",
        check_power_loss,
        power_loss_applies,
    ),
)
