"""One large object cut into ranges, each copied by an independent task.

The destination driver must declare ``range_writers``: every
:class:`RangeTask` opens its own :class:`~transfercore.contract.RangeWriter`
for its range, resumes from what the storage holds durable there (by
whichever earlier attempt), copies the rest with a durable point every
``marker_bytes``, then reads its whole range back from the storage and
compares its CRC32C with the source's.  Tasks carry URLs and numbers only,
so they run in threads of this process (:class:`LocalRanges`) or on the
workers of a Dask cluster (:func:`run_on_dask`), and Dask may run one again
after its worker died: the new attempt writes only what is not durable.

The coordinator (:func:`copy_by_ranges`) checks that the verified ranges
cover the object, combines their CRC32C values into the whole object's
(:mod:`transfercore.crccombine`, no second read), checks the source did not
change, and publishes the object once (``Driver.publish_ranges``).
"""

from __future__ import annotations

import concurrent.futures
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import crc32c

from ..contract import RangeWriter
from ..crccombine import combine_all
from ..errors import (
    CapabilityError,
    ChecksumMismatch,
    OptionError,
    RestartRejected,
    SourceChanged,
    TransferAborted,
    TransferCoreError,
)
from ..markers import MarkerCursor, MarkerPolicy
from ..ranges import ByteRange, RangeSet
from ..registry import Endpoint, open_location
from ..sizes import format_size

GiB = 1024 * 1024 * 1024
MiB = 1024 * 1024
#: Files at least this large are copied by ranges when the destination can.
DEFAULT_THRESHOLD = 1 * GiB
#: The default range: large enough that a task's fixed cost (a writer, a
#: record, a read-back) is small next to its copy, small enough that a 1 GiB
#: file keeps four movers busy.
DEFAULT_RANGE_SIZE = 256 * MiB
DEFAULT_BLOCK = 4 * MiB
#: A durable point (fdatasync + the writer's record) at least this often:
#: what a writer killed mid-range may have to write again.
DEFAULT_MARKER_BYTES = 64 * MiB
#: Runs of a range task that raised, on Dask (worker deaths are counted by the scheduler).
RETRIES = 2

_cancel = threading.Event()
_endpoints: dict[str, Endpoint] = {}
_endpoints_lock = threading.Lock()


def _endpoint(url: str) -> Endpoint:
    with _endpoints_lock:
        found = _endpoints.get(url)
        if found is None:
            found = _endpoints[url] = open_location(url)
        return found


def plan(size: int, *, count: int | None = None, range_size: int | None = None) -> list[ByteRange]:
    """Consecutive ranges covering ``size`` bytes: ``count`` of them, or of ``range_size`` each."""
    if size <= 0:
        return [ByteRange(0, 0)]  # one writer still creates, and the coordinator publishes, the empty object
    if count is not None:
        if count < 1:
            raise OptionError(f"--ranges {count} must be at least 1")
        step = -(-size // count)
    else:
        step = range_size or DEFAULT_RANGE_SIZE
        if step < 1:
            raise OptionError(f"range size {step} must be at least 1 byte")
    return [ByteRange(s, min(s + step, size)) for s in range(0, size, step)]


@attrs.frozen
class RangeResult:
    index: int
    start: int
    end: int
    #: CRC32C of the range as stored, equal to the source's.
    crc: int
    #: Bytes this attempt wrote (the rest was durable before it began).
    written: int
    resumed: int
    #: Where it ran (host:pid) and how long it took, for reports and benchmarks.
    where: str = ""
    seconds: float = 0.0


@attrs.frozen
class RangeTask:
    """Copy bytes ``[start, end)`` of ``source`` into the same range of ``destination``."""

    source: str
    destination: str
    size: int
    start: int
    end: int
    index: int
    #: The source's (size, mtime_ns, identity) when the copy was planned.
    source_facts: tuple[int, int, str]
    block: int = DEFAULT_BLOCK
    marker_bytes: int = DEFAULT_MARKER_BYTES

    def __call__(self) -> RangeResult:
        began = time.monotonic()
        src = _endpoint(self.source)
        dst = _endpoint(self.destination)
        span = ByteRange(self.start, self.end)
        writer_id = f"r{self.index}-{os.urandom(4).hex()}"
        writer = dst.driver.open_range_write(dst.path, self.size, span, writer_id)
        try:
            check = _ReadBack(writer, span, self.block)
            # durable points by bytes, each checked (only grows, only bytes written) as every front end's
            cursor = MarkerCursor(writer.resumed, policy=MarkerPolicy(None, self.marker_bytes or None))
            src_crc, written = self._copy(src, writer, span, check, cursor)
            cursor.take(writer, written=RangeSet.span(span.start, span.end))
            stored_crc = check.upto(span.end)
            if stored_crc != src_crc:
                raise ChecksumMismatch("CRC32C", f"{src_crc:08x}", f"{stored_crc:08x}",
                                       hint=f"range {span} is stored wrong; discard the partial object "
                                            "(--no-resume) and copy again")
            writer.finish()
        except BaseException:
            writer.abort()
            raise
        _check_unchanged(src, self.source_facts, "while a range was copied")
        return RangeResult(self.index, self.start, self.end, src_crc, written, writer.resumed.total(),
                           f"{socket.gethostname()}:{os.getpid()}", time.monotonic() - began)

    def _copy(self, src: Endpoint, writer: RangeWriter, span: ByteRange, check: _ReadBack,
              cursor: MarkerCursor) -> tuple[int, int]:
        resumed = writer.resumed
        crc = 0
        written = 0
        buf = bytearray(min(self.block, span.length) or 1)
        with src.driver.open_read(src.path) as reader:
            if reader.size != self.size:
                raise SourceChanged(f"source {src.path} changed since the copy was planned "
                                    f"(size {self.size} -> {reader.size})",
                                    hint="run the same command again once the source is stable")
            for start in range(span.start, span.end, self.block):
                if _cancel.is_set():
                    raise TransferAborted("the copy was cancelled")
                end = min(start + self.block, span.end)
                view = memoryview(buf)[: end - start]
                reader.readinto(start, view)
                crc = crc32c.crc32c(view, crc)
                for piece in RangeSet.span(start, end) - resumed:
                    writer.write(piece.start, view[piece.start - start: piece.end - start])
                    written += piece.length
                if cursor.due(0.0, written):
                    cursor.take(writer, written=resumed | RangeSet.span(span.start, end))
                    cursor.mark_taken(0.0, written)
                    # Verified in step, while the bytes are still in the page cache.
                    check.upto(end)
        return crc, written


class _ReadBack:
    """The CRC32C of a range as stored, read back in order as its bytes become durable."""

    def __init__(self, writer: RangeWriter, span: ByteRange, block: int) -> None:
        self._writer, self._end, self._block = writer, span.end, block
        self._done = span.start
        self._crc = 0
        self._buf = bytearray(min(block, span.length) or 1)

    def upto(self, end: int) -> int:
        """Read back up to ``end`` (every byte before it durable); the CRC32C so far."""
        while self._done < end:
            view = memoryview(self._buf)[: min(self._block, end - self._done)]
            self._writer.read_durable(self._done, view)
            self._crc = crc32c.crc32c(view, self._crc)
            self._done += view.nbytes
        return self._crc


def _facts(src: Endpoint) -> tuple[int, int, str]:
    info = src.driver.stat(src.path)
    return info.size, info.mtime_ns, info.identity


def _check_unchanged(src: Endpoint, facts: tuple[int, int, str], when: str) -> None:
    if _facts(src) != facts:
        raise SourceChanged(f"source {src.path} changed {when}",
                            hint="nothing was published; run the same command again once the source is stable")


@attrs.frozen
class RangeCopyResult:
    size: int
    checksum: str
    ranges: tuple[RangeResult, ...]
    #: Bytes found durable at the destination before the run.
    resumed: int
    seconds: float

    @property
    def written(self) -> int:
        return sum(r.written for r in self.ranges)


Runner = Callable[[Sequence[RangeTask], Callable[[RangeResult], None]], list[RangeResult]]


class LocalRanges:
    """Range tasks in ``workers`` threads of this process (reads, writes and
    CRC32C all release the interpreter lock)."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)

    def __call__(self, tasks: Sequence[RangeTask], done: Callable[[RangeResult], None]) -> list[RangeResult]:
        _cancel.clear()
        results: list[RangeResult] = []
        with concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="range") as pool:
            futures = [pool.submit(t) for t in tasks]
            try:
                for future in concurrent.futures.as_completed(futures):
                    result = future.result()
                    results.append(result)
                    done(result)
            except BaseException:
                _cancel.set()
                for f in futures:
                    f.cancel()
                raise
        return results


def _run(task: RangeTask) -> RangeResult:
    return task()


def run_on_dask(client: Any, *, retries: int = RETRIES) -> Runner:
    """A runner handing the tasks to a ``distributed.Client``'s workers in one graph update."""

    def run(tasks: Sequence[RangeTask], done: Callable[[RangeResult], None]) -> list[RangeResult]:
        from distributed import as_completed

        token = os.urandom(6).hex()
        keys = [f"transfercore-range-{token}-{t.index}" for t in tasks]
        futures = client.map(_run, list(tasks), key=keys, pure=False, retries=retries)
        results: list[RangeResult] = []
        try:
            for future in as_completed(futures, loop=client.loop):
                try:
                    result = future.result()
                except TransferCoreError:
                    raise
                except Exception as exc:  # noqa: BLE001 - Dask's own (KilledWorker, a lost scheduler)
                    raise TransferCoreError(
                        f"a range task failed on the Dask cluster: {type(exc).__name__}: {exc}",
                        hint="what the ranges made durable is kept; run the same command again") from exc
                results.append(result)
                done(result)
        except BaseException:
            try:
                client.cancel(futures)
            except Exception:  # noqa: BLE001 - a lost scheduler cancels them anyway
                pass
            raise
        return results

    return run


def copy_by_ranges(
    source: str,
    destination: str,
    runner: Runner,
    *,
    count: int | None = None,
    range_size: int | None = None,
    block: int = DEFAULT_BLOCK,
    marker_bytes: int = DEFAULT_MARKER_BYTES,
    resume: bool = True,
    force: bool = False,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> RangeCopyResult:
    """Copy ``source`` to ``destination`` by ranges; publish once, verified.

    A destination already holding the same bytes (same size and CRC32C, no
    unfinished state: a finished copy run again) is left alone unless ``force``."""
    began = time.monotonic()
    emit = on_event or (lambda _e: None)
    src = open_location(source)
    dst = open_location(destination)
    if not dst.driver.capabilities().range_writers:
        raise CapabilityError(f"the destination driver {dst.driver.name!r} cannot take several writers of one "
                              "object", hint="copy it without --ranges")
    facts = _facts(src)
    size = facts[0]
    if not resume:
        dst.driver.discard_partial(dst.path)
        durable = RangeSet()
    else:
        try:
            durable = dst.driver.durable_ranges(dst.path, size)
        except RestartRejected as exc:
            emit({"event": "discarded", "reason": exc.args[0]})
            dst.driver.discard_partial(dst.path)
            durable = RangeSet()
    if not durable and not force:
        same = _same_content(src, dst, size)
        if same is not None:
            seconds = time.monotonic() - began
            emit({"event": "up-to-date", "size": size, "checksum_algorithm": "crc32c", "checksum": same})
            return RangeCopyResult(size, same, (), 0, seconds)
    spans = plan(size, count=count, range_size=range_size)
    src_url, dst_url = str(src.location), str(dst.location)
    tasks = [RangeTask(src_url, dst_url, size, s.start, s.end, i, facts, block, marker_bytes)
             for i, s in enumerate(spans)]
    emit({"event": "ranges-planned", "size": size, "ranges": len(tasks), "durable_bytes": durable.total()})
    results = runner(tasks, lambda r: emit({"event": "range-done", "index": r.index, "start": r.start, "end": r.end,
                                           "written": r.written, "resumed": r.resumed, "where": r.where,
                                           "seconds": round(r.seconds, 3)}))
    results.sort(key=lambda r: r.start)
    expected = [(s.start, s.end) for s in spans]
    if [(r.start, r.end) for r in results] != expected:
        raise TransferCoreError(f"the range tasks of {destination} did not cover it exactly",
                                hint="run the same command again")
    checksum = f"{combine_all((r.crc, r.end - r.start) for r in results):08x}"
    _check_unchanged(src, facts, "during the copy")
    dst.driver.publish_ranges(dst.path, size)
    result = RangeCopyResult(size, checksum, tuple(results), durable.total(), time.monotonic() - began)
    emit({"event": "complete", "size": size, "checksum_algorithm": "crc32c", "checksum": checksum,
          "bytes_written": result.written, "resumed_bytes": result.resumed, "seconds": round(result.seconds, 3)})
    return result


def _same_content(src: Endpoint, dst: Endpoint, size: int) -> str | None:
    """The CRC32C both ends share when the destination already holds the source's bytes, else None."""
    from ..checksums import checksum_reader

    try:
        info = dst.driver.stat(dst.path)
    except TransferCoreError:
        return None
    if info.is_dir or info.size != size:
        return None
    with dst.driver.open_read(dst.path) as reader:
        stored = checksum_reader(reader, "crc32c")
    with src.driver.open_read(src.path) as reader:
        source = checksum_reader(reader, "crc32c")
    return source if source == stored else None


def describe(result: RangeCopyResult) -> str:
    if not result.ranges:
        return f"up to date: the destination holds the same {format_size(result.size)} (CRC32C {result.checksum})"
    rate = result.size / result.seconds if result.seconds else 0.0
    return (f"copied {format_size(result.size)} in {len(result.ranges)} ranges, {result.seconds:.1f} s "
            f"({format_size(rate)}/s), CRC32C {result.checksum}"
            + (f"; {format_size(result.resumed)} was already durable" if result.resumed else ""))


__all__ = ["DEFAULT_MARKER_BYTES", "DEFAULT_RANGE_SIZE", "DEFAULT_THRESHOLD", "LocalRanges", "RangeCopyResult",
           "RangeResult", "RangeTask", "copy_by_ranges", "plan", "run_on_dask"]


# -- a tree campaign's large files -------------------------------------------------------


def _range_runner(threads: int) -> tuple[Runner, Any]:
    """On a Dask worker, the cluster (the task secedes while its ranges run
    elsewhere: Dask's tasks-launching-tasks); anywhere else, local threads."""
    try:
        from distributed import get_worker, worker_client

        get_worker()
    except (ImportError, ValueError):
        return LocalRanges(threads), None
    context = worker_client()
    client = context.__enter__()
    return run_on_dask(client), context


def copy_file_by_ranges(source: str, destination: str, *, range_size: int, threads: int, block: int,
                        marker_bytes: int) -> RangeCopyResult:
    """One file of a tree campaign by ranges, from wherever its task runs."""
    runner, context = _range_runner(threads)
    try:
        return copy_by_ranges(source, destination, runner, range_size=range_size, block=block,
                              marker_bytes=marker_bytes)
    finally:
        if context is not None:
            context.__exit__(None, None, None)
