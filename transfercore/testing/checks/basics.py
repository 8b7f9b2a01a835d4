"""Clauses every driver meets: a correct object, bad input refused, parallel writers, checksums."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

from transfercore import checksums
from transfercore.errors import InvalidWrite, RestartRejected, WriterClosed
from transfercore.ranges import RangeSet

from .. import holdwrite
from ..clause import Clause, Violation, require
from ..subject import Subject, describe_ranges, differing


def _expect(exc_type: type[BaseException], what: str, action) -> None:  # type: ignore[no-untyped-def]
    try:
        action()
    except exc_type:
        return
    except Exception as exc:  # noqa: BLE001 - the evidence names the wrong error
        raise Violation(f"{what}: raised {type(exc).__name__}: {exc}, expected {exc_type.__name__}") from exc
    raise Violation(f"{what}: accepted, expected {exc_type.__name__}")


def check_round_trip(s: Subject) -> str:
    data = s.data()
    path = s.new_path("round-trip")
    blocks = s.blocks()
    order = blocks if s.caps.ordered_writes else list(reversed(blocks))
    writer = s.driver.open_write(path, len(data))
    require(writer.size == len(data), f"writer.size is {writer.size}, expected {len(data)}")
    require(not writer.resumed, f"a fresh writer reports resumed={writer.resumed}")
    s.write_ranges(writer, data, order)
    writer.complete()
    writer.close()
    info = s.driver.stat(path)
    require(info.size == len(data), f"stat() size {info.size} after complete, expected {len(data)}")
    got = s.read_back(path)
    require(got == data, f"read back differs from what was written at {describe_ranges(differing(data, got))}")
    empty = s.new_path("empty")
    writer = s.driver.open_write(empty, 0)
    writer.complete()
    writer.close()
    require(s.read_back(empty) == b"", "a zero-byte object does not read back empty")
    order_note = "in order" if s.caps.ordered_writes else "in reverse order"
    return f"{len(data)} bytes in {len(blocks)} blocks written {order_note}, and a zero-byte object"


def check_bad_inputs(s: Subject) -> str:
    data = s.data()
    path = s.new_path("bad-inputs")
    writer = s.driver.open_write(path, len(data))
    first = s.blocks()[0]
    _expect(InvalidWrite, "write at offset -1", lambda: writer.write(-1, b"x"))
    _expect(InvalidWrite, f"write of 2 bytes at {len(data) - 1} (past the size {len(data)})",
            lambda: writer.write(len(data) - 1, b"xy"))
    _expect(InvalidWrite, f"write at offset {len(data) + 1} (past the size)", lambda: writer.write(len(data) + 1, b"x"))
    writer.write(first.start, data[first.start : first.end])
    half = first.length // 2
    _expect(InvalidWrite, f"write at {half} overlapping the earlier write {first}",
            lambda: writer.write(half, data[half : half + first.length]))
    rest = RangeSet.span(0, len(data)) - RangeSet.span(first.start, first.end)
    s.write_ranges(writer, data, rest)
    writer.complete()
    _expect(WriterClosed, "write after complete()", lambda: writer.write(0, data[:1]))
    writer.close()
    got = s.read_back(path)
    require(got == data, f"refused writes damaged the object at {describe_ranges(differing(data, got))}")

    other = s.new_path("bad-inputs-closed")
    writer = s.driver.open_write(other, len(data))
    writer.abort()
    _expect(WriterClosed, "write after abort()", lambda: writer.write(0, data[:1]))
    writer = s.driver.open_write(other, len(data))
    writer.close()
    _expect(WriterClosed, "write after close()", lambda: writer.write(0, data[:1]))
    notes = "negative offset, past the size, overlap, write after complete/abort/close"
    if s.caps.restart.value != "none":
        writer = s.driver.open_write(other, len(data))
        s.write_ranges(writer, data, [first])
        marker = writer.durable()
        writer.abort()
        if marker:
            try:
                writer = s.driver.open_write(other, len(data), resume=marker)
            except RestartRejected as exc:
                raise Violation(f"marker {marker} from durable() was rejected on resume: {exc}") from exc
            inside = next(iter(marker))
            _expect(InvalidWrite, f"write at {inside.start} inside the resumed marker {marker}",
                    lambda: writer.write(inside.start, data[inside.start : inside.start + 1]))
            writer.abort()
            notes += ", write inside the resumed marker"
    return notes


def concurrency_applies(s: Subject) -> str | None:
    if s.caps.max_writers < 2:
        return "driver declares max_writers=1"
    return None


def check_concurrency(s: Subject) -> str:
    # A thread whose write() returned records it before another thread runs:
    # with a long switch interval, threads change hands only where they block
    # (I/O, a held lock), so the bookkeeping never lags behind the driver's.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.5)
    try:
        threaded = _check_concurrency(s)
    finally:
        sys.setswitchinterval(switch)
    if s.caps.restart.value == "none":
        return threaded
    return f"{threaded}; {_check_held_writes(s)}"


def _check_held_writes(s: Subject) -> str:
    """The race made certain: in a child process, a write system call is held after the
    kernel took its bytes while durable() runs; the marker must not hold that range."""
    library, why = holdwrite.build_shim()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    if library is not None:
        env["LD_PRELOAD"] = f"{library} {env.get('LD_PRELOAD', '')}".strip()
        env[holdwrite.SHIM_ENV] = library
    blocks = s.blocks()
    holds = sorted({0, len(blocks) // 2, len(blocks) - 1})
    path = s.new_path("concurrency-held")
    job = {"url": str(s.location), "path": path, "size": s.size, "seed": s.random.randrange(2**32),
           "blocks": [[b.start, b.end] for b in blocks], "holds": holds}
    proc = subprocess.run(
        [sys.executable, "-m", "transfercore.testing.holdchild", json.dumps(job)],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, env=env,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    held = waited = 0
    for line in lines:
        if "block" not in line:
            continue
        block = RangeSet.of(tuple(line["block"]))
        require("write_error" not in line, f"a write of {block} failed: {line.get('write_error')}")
        require("durable_error" not in line,
                f"durable() called while the write of {block} was held failed: {line.get('durable_error')}")
        if not line["held"]:
            continue
        held += 1
        if "marker" not in line:
            waited += 1
            continue
        marker = RangeSet.parse(line["marker"]) if line["marker"] else RangeSet()
        done = RangeSet.parse(line["returned"]) if line["returned"] else RangeSet()
        require(done.contains(marker),
                f"durable() called while the write system call of {block} had completed but write() had not "
                f"returned reported {marker}, which holds {describe_ranges(marker - done)} whose write() had "
                "not returned: the driver counts a range as written before its write finishes")
    require(proc.returncode == 0 and bool(lines) and "final" in lines[-1],
            f"the writer in the child process failed: {proc.stderr.strip()[-1500:]}")
    require(lines[-1]["intact"], "the object written with held writes does not read back as written")
    if library is not None and any(line.get("hold") == "python" for line in lines):
        why = f"the dynamic loader did not preload {library}"
    shim = library is not None and any(line.get("hold") == "shim" for line in lines)
    how = "a preloaded C library" if shim else f"a wrapper of Python's os module ({why})"
    if not held:
        return (f"no write system call to a file was made inside write() (checked with {how}), "
                "so the race was tried with threads only")
    note = f"{held} writes held after the kernel took their bytes (by {how}); durable() meanwhile "
    if waited == held:
        return note + "waited for each"
    return note + "reported none of them" + (f", and waited for {waited}" if waited else "")


def _check_concurrency(s: Subject) -> str:
    threads = min(s.caps.max_writers, 8)
    size = s.block * threads * 8
    data = s.data(size)
    path = s.new_path("concurrency")
    writer = s.driver.open_write(path, size)
    blocks = s.blocks(size)
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []
    lock = threading.Lock()
    returned = RangeSet()  # ranges whose write() has returned
    in_flight = 0
    running = threads

    def work(index: int) -> None:
        nonlocal returned, in_flight, running
        try:
            barrier.wait(30)
            for block in blocks[index::threads]:
                with lock:
                    in_flight += 1
                try:
                    writer.write(block.start, data[block.start : block.end])
                finally:
                    with lock:
                        in_flight -= 1
                        returned = returned | block
        except BaseException as exc:  # noqa: BLE001 - reported as evidence below
            errors.append(exc)
        finally:
            with lock:
                running -= 1

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    # Markers are taken while the writers run: a marker may hold only bytes
    # whose write() had returned by the time durable() returned.
    restartable = s.caps.restart.value != "none"
    barrier.wait(30)
    previous = RangeSet()
    calls = overlapping = 0
    while restartable:
        with lock:
            busy, alive = in_flight, running
        if not alive:
            break
        marker = writer.durable()
        with lock:
            done = returned
        calls += 1
        overlapping += busy > 0
        require(done.contains(marker),
                f"durable() called while {busy} writes were in flight returned {marker}, which holds "
                f"{describe_ranges(marker - done)} whose write() had not returned: the marker ran ahead "
                "of the data")
        require(marker.contains(previous), f"durable() returned {marker} after {previous}: it lost {previous - marker}")
        previous = marker
        time.sleep(0.001)  # let the writers have the interpreter
    for t in workers:
        t.join(120)
    require(not any(t.is_alive() for t in workers), f"{threads} concurrent writers did not finish in 120 s")
    require(not errors, f"a concurrent write failed: {errors[0]!r}" if errors else "")
    marker = writer.durable()
    if s.caps.restart.value == "ranges":
        require(marker.contains(RangeSet.span(0, size)),
                f"after {threads} writers wrote everything, durable() returned only {marker}")
    writer.complete()
    writer.close()
    got = s.read_back(path)
    require(got == data, f"concurrent writes produced a wrong object at {describe_ranges(differing(data, got))}")
    during = f", {calls} markers taken meanwhile ({overlapping} with writes in flight)" if restartable else ""
    return f"{threads} threads wrote {len(blocks)} interleaved blocks{during}"


def checksums_apply(s: Subject) -> str | None:
    return None if s.caps.checksums else "driver declares no storage checksums"


def check_checksums(s: Subject) -> str:
    data = s.data()
    path = s.new_path("checksums")
    writer = s.driver.open_write(path, len(data))
    s.write_ranges(writer, data, s.blocks())
    writer.complete()
    writer.close()
    for algorithm in sorted(s.caps.checksums):
        expected = checksums.digest_bytes(algorithm, data)
        got = s.driver.checksum(path, algorithm)
        require(got is not None, f"declared checksum {algorithm} but checksum() returned None")
        require(str(got).lower() == expected, f"{algorithm}: driver says {got}, the data's is {expected}")
    return ", ".join(sorted(s.caps.checksums))


CLAUSES = (
    Clause(
        "round-trip",
        "What is written and completed reads back identical, whatever the declared write order allows.",
        check_round_trip,
    ),
    Clause(
        "bad-inputs",
        "A negative offset, bytes past the size, an overlapping write, a write inside the resumed marker "
        "and a write after complete/abort/close raise InvalidWrite or WriterClosed and damage nothing.",
        check_bad_inputs,
    ),
    Clause(
        "concurrency",
        "Up to max_writers threads writing at once produce a correct object, and durable() called while "
        "writes are in flight returns only bytes whose write() had returned; the race is made certain by "
        "holding a write system call after the kernel took its bytes while durable() runs.",
        check_concurrency,
        concurrency_applies,
    ),
    Clause(
        "checksums",
        "Every declared storage checksum equals the checksum of the data.",
        check_checksums,
        checksums_apply,
    ),
)
