"""Batch durability: ``Driver.complete_batch`` publishes many objects with one
durable point, and keeps the same promises as one ``complete()`` per object.

The checks write a batch of objects (an empty one among them), refuse one of
them in the ``verify`` call, and require: nothing shows under a final name
before the call, the refused object never does, every other object is
published whole, and after a crash (in process where declared, and on a file
system that loses power for drivers storing local files) every object the
call reported as published is still there, byte for byte.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable

from transfercore.contract import Driver, Writer
from transfercore.errors import NotFound, TransferCoreError
from transfercore.ranges import RangeSet

from ..clause import Clause, Disabled, NotRun, require
from ..subject import Subject, describe_ranges, differing

#: Objects per batch; the one at REFUSED is refused by verify.
COUNT = 5
REFUSED = 2


class Refused(TransferCoreError):
    """The kit's verify callback refusing one object of the batch."""


def _sizes(s: Subject) -> list[int]:
    return [0, 1, s.block + 3, s.size, s.block][:COUNT]


def _visible(driver: Driver, path: str) -> bool:
    try:
        driver.stat(path)
    except NotFound:
        return False
    return True


def _run_batch(s: Subject, driver: Driver, base: str) -> tuple[list[str], list[bytes], list[BaseException | None]]:
    paths = [f"{base}-{i}" for i in range(COUNT)]
    datas = [s.data(n) for n in _sizes(s)]
    writers: list[Writer] = []
    for path, data in zip(paths, datas, strict=True):
        writer = driver.open_write(path, len(data))
        if data:
            s.write_ranges(writer, data, s.pieces(RangeSet.of((0, len(data)))))
        writers.append(writer)
    if s.caps.atomic_publish:
        for path in paths:
            require(not _visible(driver, path), f"{path} is visible under its final name before complete_batch()")
    expected = {id(w): d for w, d in zip(writers, datas, strict=True)}
    seen: list[int] = []

    def verify(writer: Writer) -> None:
        data = expected[id(writer)]
        seen.append(id(writer))
        if s.caps.read_back and data:
            buf = bytearray(len(data))
            writer.read_durable(0, buf)
            require(bytes(buf) == data, f"read_durable() in verify returned bytes differing at "
                                        f"{describe_ranges(differing(data, bytes(buf)))}")
        if writer is writers[REFUSED]:
            raise Refused("refused by the kit")

    results = driver.complete_batch(writers, verify)
    require(len(results) == COUNT, f"complete_batch() returned {len(results)} results for {COUNT} writers")
    require(sorted(seen) == sorted(expected), "verify was not called exactly once for every writer")
    require(isinstance(results[REFUSED], Refused),
            f"the object refused by verify was reported as {results[REFUSED]!r}, not as the refusal")
    for i, result in enumerate(results):
        if i != REFUSED:
            require(result is None, f"object {i} of the batch failed: {result!r}")
    for w in writers:
        with contextlib.suppress(Exception):
            w.close()
    return paths, datas, results


def _check_published(s: Subject, driver: Driver, paths: list[str], datas: list[bytes], when: str) -> None:
    for i, (path, data) in enumerate(zip(paths, datas, strict=True)):
        if i == REFUSED:
            if s.caps.atomic_publish:
                require(not _visible(driver, path),
                        f"{when}: the object refused by verify is visible under its final name")
            continue
        require(_visible(driver, path), f"{when}: object {i} ({len(data)} bytes) reported published is gone")
        got = s.read_back(path, driver)
        require(got == data, f"{when}: object {i} reads {len(got)} bytes differing at "
                             f"{describe_ranges(differing(data, got))}")


def check_batch(s: Subject) -> str:
    base = s.new_path("batch")
    s._created.extend(f"{base}-{i}" for i in range(COUNT))  # the batch's real names, for cleanup
    paths, datas, _ = _run_batch(s, s.driver, base)
    _check_published(s, s.driver, paths, datas, "after complete_batch()")
    note = f"{COUNT} objects (one empty) in one batch, one refused by verify"
    if s.caps.crash_simulation:
        s.driver.simulate_crash()
        _check_published(s, s.fresh_driver(), paths, datas, "after a simulated crash")
        note += "; all published ones survived a simulated crash"
    return note


def power_loss_applies(s: Subject) -> str | None:
    if s.driver.local_path(f"{s.base}/probe") is None:
        return "driver does not store objects as local files (its local_path() returns None)"
    return None


def check_batch_power_loss(s: Subject) -> str:
    if not s.options.power_loss:
        raise Disabled("switched off by the person running the kit (--no-power-loss)")
    from ..powerloss import PowerLossFS, check_fuse
    from ..powerloss.mount import FuseUnavailable

    try:
        check_fuse()
    except FuseUnavailable as exc:
        # as durable-power-loss: the machine lacks FUSE, the driver is not to blame, nothing is proven
        raise NotRun(f"{exc.args[0]}: {exc.hint}, or pass --no-power-loss to switch the clause off") from None
    mount_path = s.new_path("batch-power-loss")
    mountpoint = s.driver.local_path(mount_path)
    assert mountpoint is not None
    os.mkdir(mountpoint)
    backing = tempfile.mkdtemp(prefix="transfercore-powerloss-")
    fs = PowerLossFS(backing, mountpoint)
    try:
        fs.mount()
        driver = s.fresh_driver()
        paths, datas, _ = _run_batch(s, driver, f"{mount_path}/object")
        driver.close()
        fs.crash(remount=True)
        after: Callable[[], Driver] = s.fresh_driver
        _check_published(s, after(), paths, datas, "after a power cut")
        return f"{COUNT} objects published by one complete_batch() survived a power cut"
    finally:
        if fs.mounted:
            fs.crash(remount=False)
        shutil.rmtree(backing, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(mountpoint)


CLAUSES = (
    Clause(
        "batch-publish",
        "complete_batch() publishes every verified object whole and durable, reports one that verify "
        "refused as failed (and, with atomic_publish, never shows it or any object before the call); with "
        "crash_simulation, the published objects survive a crash.",
        check_batch,
    ),
    Clause(
        "batch-power-loss",
        "For drivers storing local files: every object complete_batch() reported as published survives "
        "a power cut right after the call, on a file system that loses everything not synced.",
        check_batch_power_loss,
        power_loss_applies,
    ),
)
