"""Per-file work of a campaign, as picklable tasks that any worker can run.

A task carries URLs and the walk's facts about its files, never open
objects, so it can run in a thread of this process or on another host
(see :mod:`.executor`).  Workers keep no state of their own: what a task
knows about a partial object comes from the destination driver's durable
resume record (``Driver.partial``), and what it learns goes back in its
result, which only the client records in the campaign journal.

Small files go in :class:`BatchTask`\\ s: each file read whole, hashed, written
under a hidden name, then the batch published with one durable point
(``Driver.complete_batch``) after every file was read back and compared.
Large files go one per :class:`LargeFileTask` through the transfer engine,
in blocks over streams with restart markers.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable

import attrs

from ..checksums import checksum_reader, digest_bytes
from ..contract import LocalFile, Writer
from ..errors import ChecksumMismatch, SourceChanged, TransferAborted, TransferCoreError, UnsupportedName
from ..journal import Journal
from ..location import parse_location
from ..publishing import Check, Leftover, leftover, plan
from ..ranges import RangeSet
from ..registry import Endpoint, open_location
from .attributes import copy_attributes
from .model import FileState, dst_facts
from .walk import is_utf8, join

_endpoints: dict[str, Endpoint] = {}
_endpoints_lock = threading.Lock()
_cancel = threading.Event()
_running: set[object] = set()


def endpoint(url: str) -> Endpoint:
    """This process's driver for ``url``, opened once and shared by its tasks."""
    with _endpoints_lock:
        found = _endpoints.get(url)
        if found is None:
            found = _endpoints[url] = open_location(url)
        return found


def close_endpoints() -> None:
    with _endpoints_lock:
        opened = list(_endpoints.values())
        _endpoints.clear()
    for e in opened:
        try:
            e.driver.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


def cancel_all() -> None:
    """Stop this process's tasks: batches stop between files, large files at their next marker."""
    _cancel.set()
    for transfer in list(_running):
        transfer.cancel()  # type: ignore[attr-defined]


def reset_cancel() -> None:
    _cancel.clear()


def sub_endpoint(root: Endpoint, rel: str) -> Endpoint:
    path = join(root.path, rel)
    return Endpoint(driver=root.driver, path=path, location=root.location.with_path(path))


@attrs.frozen
class FileSpec:
    rel: str
    size: int
    mtime_ns: int
    mode: int
    identity: str
    #: Handed out before: the destination may hold partial state, or the
    #: object itself if a run stopped between publishing and recording it.
    started: bool = False


@attrs.frozen
class FileResult:
    rel: str
    state: FileState
    size: int
    #: Bytes this run wrote to the destination.
    written: int = 0
    checksum: str = ""
    marker: str = ""
    error: str = ""
    message: str = ""
    #: Found published and verified at the destination; nothing written.
    reused: bool = False
    #: What the destination holds once published (:func:`~.model.dst_facts`).
    dst: str = ""


def _published_facts(dst: Endpoint, path: str) -> str:
    """The destination's facts of a just-published object, for later runs to
    check it against; "" (checked by size and time only) if it cannot say."""
    try:
        return dst_facts(dst.driver.lstat(path))
    except TransferCoreError:
        return ""


def _failed(spec: FileSpec, exc: BaseException, state: FileState = FileState.FAILED, marker: str = "") -> FileResult:
    if isinstance(exc, UnicodeError):
        exc = bytes_name_refused(exc)
    message = exc.args[0] if isinstance(exc, TransferCoreError) and exc.args else (str(exc) or type(exc).__name__)
    hint = getattr(exc, "hint", "") or ""
    return FileResult(spec.rel, state, spec.size, marker=marker, error=type(exc).__name__,
                      message=f"{message}; {hint}" if hint else str(message))


def bytes_name_refused(exc: BaseException) -> TransferCoreError:
    """A driver that can only store UTF-8 names met one that is not."""
    return UnsupportedName(f"the name is not valid UTF-8 and the destination cannot store it ({exc})",
                           hint="rename it at the source, or copy to storage that keeps names as bytes (posix)")


def _check_unchanged(src: Endpoint, path: str, spec: FileSpec, when: str) -> None:
    info = src.driver.lstat(path)
    if (info.size, info.mtime_ns, info.identity) != (spec.size, spec.mtime_ns, spec.identity) or info.link:
        raise SourceChanged(
            f"source {path} changed {when} (size {spec.size} -> {info.size})",
            hint="it was not published; run the same command again once the source is stable",
        )


def _drop_partial(dst: Endpoint, path: str) -> None:
    """A small file is written again whole, never resumed: what a failed
    write of it left is litter (thousands of files, on a full disk)."""
    try:
        dst.driver.discard_partial(path)
    except Exception:  # noqa: BLE001 - the write's own error is the one to report
        pass


def _read_whole(src: Endpoint, path: str, spec: FileSpec) -> bytearray:
    buf = bytearray(spec.size)
    with src.driver.open_read(path) as reader:
        if reader.size != spec.size:
            raise SourceChanged(f"source {path} changed since it was listed (size {spec.size} -> {reader.size})",
                                hint="run the same command again once the source is stable")
        if spec.size:
            reader.readinto(0, buf)
    _check_unchanged(src, path, spec, "while it was read")
    return buf


def _stored_sum(dst: Endpoint, path: str, algorithm: str) -> str:
    own = dst.driver.checksum(path, algorithm)
    if own is not None:
        return own.lower()
    with dst.driver.open_read(path) as reader:
        return checksum_reader(reader, algorithm)


def _already_published(src: Endpoint, dst: Endpoint, spec: FileSpec, algorithm: str | None,
                       extras: tuple[bool, bool] = (False, False)) -> FileResult | None:
    """A file handed out before may have been published just before the run
    stopped, before its outcome was recorded: proven equal by its checksum,
    it is kept, not written again."""
    dpath = join(dst.path, spec.rel)
    try:
        info = dst.driver.lstat(dpath)
    except TransferCoreError:
        return None
    if info.is_dir or info.link is not None or info.size != spec.size or algorithm is None:
        return None
    spath = join(src.path, spec.rel)
    with src.driver.open_read(spath) as reader:
        source_sum = checksum_reader(reader, algorithm)
    _check_unchanged(src, spath, spec, "while it was read")
    if _stored_sum(dst, dpath, algorithm) != source_sum:
        return None
    if (info.mtime_ns, info.mode) != (spec.mtime_ns, spec.mode & 0o7777):
        try:
            dst.driver.set_metadata(dpath, mode=spec.mode, mtime_ns=spec.mtime_ns)
        except TransferCoreError:
            pass
    copy_attributes(src, spath, dst, dpath, xattrs=extras[0], owners=extras[1])
    return FileResult(spec.rel, FileState.COMPLETE, spec.size, checksum=source_sum, reused=True,
                      dst=_published_facts(dst, dpath))


@attrs.frozen
class BatchTask:
    """Small files copied whole and published together with one durable point."""

    source: str
    destination: str
    files: tuple[FileSpec, ...]
    checksum: str | None = "crc32c"
    #: Keep extended attributes, owners (``--xattrs``, ``--owners``).
    extras: tuple[bool, bool] = (False, False)

    def __call__(self) -> list[FileResult]:
        src = endpoint(self.source)
        dst = endpoint(self.destination)
        algorithm = self.checksum
        results: dict[str, FileResult] = self._local_batch(src, dst)
        if len(results) == len(self.files):
            return [results[s.rel] for s in self.files]
        caps = dst.driver.capabilities()
        check = plan(bool(algorithm), caps.read_back)
        writers: list[Writer] = []
        specs: list[FileSpec] = []
        expected: dict[int, str] = {}
        for spec in self.files:
            if spec.rel in results:
                continue
            if _cancel.is_set():
                results[spec.rel] = _failed(spec, TransferAborted("the copy was cancelled"), FileState.STARTED)
                continue
            dpath = join(dst.path, spec.rel)
            try:
                if spec.started:
                    found = _already_published(src, dst, spec, algorithm, self.extras)
                    if found is not None:
                        results[spec.rel] = found
                        continue
                    dst.driver.discard_partial(dpath)
                data = _read_whole(src, join(src.path, spec.rel), spec)
                source_sum = digest_bytes(algorithm, data) if algorithm else ""
                writer = dst.driver.open_new(dpath, spec.size)
                try:
                    if data:
                        writer.write(0, data)
                    writer.set_metadata(mode=spec.mode, mtime_ns=spec.mtime_ns)
                except BaseException:
                    writer.abort()
                    _drop_partial(dst, dpath)
                    raise
            except Exception as exc:  # noqa: BLE001 - one file's failure is reported, the rest go on
                results[spec.rel] = _failed(spec, exc)
                continue
            expected[id(writer)] = source_sum
            writers.append(writer)
            specs.append(spec)

        def verify(writer: Writer) -> None:
            if not algorithm:
                return
            buf = bytearray(writer.size)
            if writer.size:
                writer.read_durable(0, buf)
            got = digest_bytes(algorithm, buf)
            if got != expected[id(writer)]:
                raise ChecksumMismatch(algorithm.upper(), expected[id(writer)], got,
                                       hint="it was not published; run the same command again")

        batch_verify: Callable[[Writer], None] | None = verify if check is Check.BEFORE else None
        outcomes = dst.driver.complete_batch(writers, batch_verify) if writers else []
        for spec, writer, error in zip(specs, writers, outcomes, strict=True):
            if error is None and check is Check.AFTER:
                error = self._verify_published(dst, spec, algorithm or "", expected[id(writer)])
            if error is None and any(self.extras):
                try:
                    copy_attributes(src, join(src.path, spec.rel), dst, join(dst.path, spec.rel),
                                    xattrs=self.extras[0], owners=self.extras[1])
                except TransferCoreError as exc:
                    error = exc
            if error is not None:
                kept = isinstance(error, ChecksumMismatch) and leftover(check, caps.atomic_publish) is Leftover.KEPT
                if not kept:  # a mismatch refused before publishing is kept for inspection
                    _drop_partial(dst, join(dst.path, spec.rel))
                results[spec.rel] = _failed(spec, error)
            else:
                results[spec.rel] = FileResult(spec.rel, FileState.COMPLETE, spec.size, written=spec.size,
                                               checksum=expected[id(writer)],
                                               dst=_published_facts(dst, join(dst.path, spec.rel)))
        return [results[s.rel] for s in self.files]

    def _local_batch(self, src: Endpoint, dst: Endpoint) -> dict[str, FileResult]:
        """The files the destination driver copied in one step from the local
        file system (``Driver.copy_local_batch``): each published durable and
        verified.  The others, and files that may already be published
        (``started``), go the ordinary way."""
        if any(self.extras) or _cancel.is_set():
            return {}
        # Read straight from the file system only where the source driver
        # would read the same file (no confinement to a root to check).
        if src.driver.name != "posix" or src.driver.settings.get("root"):
            return {}
        local: list[LocalFile] = []
        specs: list[FileSpec] = []
        # The root mapped once: a walk's (or a cleaned manifest's) relative paths are
        # plain names joined by "/", which the mapping of each file would leave as they are.
        root = src.driver.local_path(src.path)
        if root is None:
            return {}
        sprefix = root.rstrip("/") + "/"
        dprefix = dst.path.rstrip("/") + "/"
        for spec in self.files:
            if spec.started:
                continue
            dev, _, ino = spec.identity.partition(":")
            if not (dev.isdigit() and ino.isdigit()):
                return {}
            rel = spec.rel
            local.append(LocalFile(sprefix + rel, dprefix + rel, spec.size, spec.mtime_ns, spec.mode,
                                   int(dev), int(ino)))
            specs.append(spec)
        if not local:
            return {}
        try:
            copied = dst.driver.copy_local_batch(local, self.checksum)
        except (TransferCoreError, UnicodeError):
            return {}  # copied one by one, which says what is wrong
        if copied is None:
            return {}
        results: dict[str, FileResult] = {}
        for spec, outcome in zip(specs, copied, strict=True):
            if outcome is not None:
                checksum, info = outcome
                results[spec.rel] = FileResult(spec.rel, FileState.COMPLETE, spec.size, written=spec.size,
                                               checksum=checksum, dst=dst_facts(info))
        return results

    @staticmethod
    def _verify_published(dst: Endpoint, spec: FileSpec, algorithm: str, expected: str) -> BaseException | None:
        # The destination cannot read back before publishing: check the
        # published object and take it away again if it differs.
        path = join(dst.path, spec.rel)
        try:
            got = _stored_sum(dst, path, algorithm)
        except Exception as exc:  # noqa: BLE001
            return exc
        if got == expected:
            return None
        try:
            dst.driver.remove(path)
        except Exception:  # noqa: BLE001
            pass
        return ChecksumMismatch(algorithm.upper(), expected, got, hint="it was removed; run the same command again")


@attrs.frozen
class VerifyTask:
    """Deep verification of published files: each read back whole from the
    destination and compared by checksum with the source, read again too.
    A file that differs comes back ``pending`` (copied again); one that is
    equal, ``complete``; one that cannot be checked, ``failed``."""

    source: str
    destination: str
    files: tuple[FileSpec, ...]
    checksum: str = "crc32c"

    def __call__(self) -> list[FileResult]:
        src = endpoint(self.source)
        dst = endpoint(self.destination)
        results = []
        for spec in self.files:
            if _cancel.is_set():
                results.append(_failed(spec, TransferAborted("the copy was cancelled"), FileState.COMPLETE))
                continue
            try:
                results.append(self._one(src, dst, spec))
            except Exception as exc:  # noqa: BLE001 - one file's failure is reported, the rest go on
                results.append(_failed(spec, exc))
        return results

    def _one(self, src: Endpoint, dst: Endpoint, spec: FileSpec) -> FileResult:
        spath, dpath = join(src.path, spec.rel), join(dst.path, spec.rel)
        with src.driver.open_read(spath) as reader:
            source_sum = checksum_reader(reader, self.checksum, stop=_cancel)
        _check_unchanged(src, spath, spec, "while it was verified")
        with dst.driver.open_read(dpath) as reader:
            size = reader.size
            got = checksum_reader(reader, self.checksum, stop=_cancel) if size == spec.size else ""
        if got == source_sum:
            return FileResult(spec.rel, FileState.COMPLETE, spec.size, checksum=source_sum)
        why = (f"the destination holds {size} bytes, not {spec.size}" if size != spec.size
               else f"{self.checksum.upper()} {got} at the destination, {source_sum} at the source")
        return FileResult(spec.rel, FileState.PENDING, spec.size, message=why)


@attrs.frozen
class LargeFileTask:
    """One large file through the transfer engine, resumed from the destination's record."""

    source: str
    destination: str
    file: FileSpec
    options: object  # TransferOptions (kept loose so this module imports nothing heavy)
    extras: tuple[bool, bool] = (False, False)

    def __call__(self) -> FileResult:
        from ..engine import Transfer

        spec = self.file
        src = sub_endpoint(endpoint(self.source), spec.rel)
        dst = sub_endpoint(endpoint(self.destination), spec.rel)
        if _cancel.is_set():
            return _failed(spec, TransferAborted("the copy was cancelled"), FileState.STARTED)
        if not is_utf8(spec.rel):
            # Large files go through the engine, whose locations are URLs of UTF-8 text.
            return _failed(spec, UnsupportedName(
                "the name is not valid UTF-8: such files are copied whole, up to --whole-file-max, and this one "
                f"has {spec.size} bytes", hint="raise --whole-file-max above its size, or rename it at the source"))
        if spec.started:
            try:
                found = _already_published(endpoint(self.source), endpoint(self.destination), spec,
                                           getattr(self.options, "checksum", None), self.extras)
                if found is not None:
                    # A run stopped between publishing and removing its resume
                    # record leaves the record behind; the audit kept it for
                    # this task, which now knows it is stale.
                    dst.driver.discard_partial(dst.path)
            except Exception as exc:  # noqa: BLE001
                return _failed(spec, exc)
            if found is not None:
                return found
        # A throwaway journal: with no row for this copy, the engine resumes
        # from the destination's own resume record.  The worker trusts the
        # storage, not any state of its own.
        scratch = tempfile.TemporaryDirectory(prefix="transfercore-task-")
        journal = Journal(os.path.join(scratch.name, "task.db"))
        try:
            transfer = Transfer(src, dst, self.options, journal=journal)  # type: ignore[arg-type]
            _running.add(transfer)
            try:
                result = transfer.run()
            finally:
                _running.discard(transfer)
            _finish(src, dst, spec, self.extras)
        except Exception as exc:  # noqa: BLE001
            try:
                left = dst.driver.partial(dst.path)
            except Exception:  # noqa: BLE001
                left = RangeSet()
            state = FileState.PARTIAL if left else FileState.FAILED
            if isinstance(exc, TransferAborted) and not left:
                state = FileState.STARTED
            return _failed(spec, exc, state, marker=str(left))
        finally:
            journal.close()
            scratch.cleanup()
        return FileResult(spec.rel, FileState.COMPLETE, spec.size, written=result.bytes_sent,
                          checksum=result.checksum or "", dst=_published_facts(dst, dst.path))


@attrs.frozen
class RangedFileTask(LargeFileTask):
    """A large file cut into ranges, each copied by its own range writer: on
    the cluster's workers when the task runs on a Dask worker, in threads of
    its process otherwise (see :mod:`.rangecopy`).  Falls back to the whole
    file through the engine where the destination cannot take several
    writers or the tree's checksum is not CRC32C."""

    range_size: int = 256 * 1024 * 1024
    threads: int = 4

    def __call__(self) -> FileResult:
        from . import rangecopy

        spec = self.file
        src = sub_endpoint(endpoint(self.source), spec.rel)
        dst = sub_endpoint(endpoint(self.destination), spec.rel)
        if (not dst.driver.capabilities().range_writers or getattr(self.options, "checksum", None) != "crc32c"
                or not is_utf8(spec.rel)):
            return LargeFileTask.__call__(self)
        if _cancel.is_set():
            return _failed(spec, TransferAborted("the copy was cancelled"), FileState.STARTED)
        try:
            if spec.started:
                found = _already_published(endpoint(self.source), endpoint(self.destination), spec, "crc32c",
                                           self.extras)
                if found is not None:
                    return found
            block = getattr(self.options, "block_size", None) or rangecopy.DEFAULT_BLOCK
            result = rangecopy.copy_file_by_ranges(str(src.location), str(dst.location), range_size=self.range_size,
                                                   threads=self.threads, block=block,
                                                   marker_bytes=rangecopy.DEFAULT_MARKER_BYTES)
            _finish(src, dst, spec, self.extras)
        except Exception as exc:  # noqa: BLE001
            try:
                left = dst.driver.durable_ranges(dst.path, spec.size)
            except Exception:  # noqa: BLE001
                left = RangeSet()
            state = FileState.PARTIAL if left else FileState.FAILED
            if isinstance(exc, TransferAborted) and not left:
                state = FileState.STARTED
            return _failed(spec, exc, state, marker=str(left))
        return FileResult(spec.rel, FileState.COMPLETE, spec.size, written=result.written, checksum=result.checksum,
                          dst=_published_facts(dst, dst.path))


def _finish(src: Endpoint, dst: Endpoint, spec: FileSpec, extras: tuple[bool, bool]) -> None:
    """After a large file is published: its mode and time, the check that the
    source did not change while it was copied, and the attributes asked for."""
    try:
        dst.driver.set_metadata(dst.path, mode=spec.mode, mtime_ns=spec.mtime_ns)
    except TransferCoreError:
        pass  # the driver keeps no such metadata
    _check_unchanged(src, src.path, spec, "during the copy")
    copy_attributes(src, src.path, dst, dst.path, xattrs=extras[0], owners=extras[1])


def _url(e: Endpoint) -> str:
    return str(attrs.evolve(e.location, options=()))


__all__ = ["BatchTask", "FileResult", "FileSpec", "LargeFileTask", "RangedFileTask", "VerifyTask", "cancel_all", "close_endpoints", "endpoint",
           "parse_location"]
