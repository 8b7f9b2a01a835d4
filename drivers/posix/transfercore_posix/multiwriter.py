"""Many writers of one file: disjoint ranges, each made durable by its own writer.

Writers may be threads, processes or hosts sharing the file system; they
never talk to each other.  For an object ``dir/name`` they share, in ``dir``:

* the **anchor** ``.<name>.tcpart.ranges``: the object's size, the random
  token naming the shared partial file and that file's inode.  It is
  created once: the creator makes the partial file ``.<name>.<token>.tcpart``
  (``O_EXCL``), writes the anchor under a temporary name, syncs it and
  ``link``\\ s it to the anchor name, which fails if another writer got there
  first; the loser removes its own file and joins the winner's.  A partial
  file is never created again under an anchor's token, so a record can never
  be believed of a new, empty file that reused a name and an inode.
* one **writer record** ``.<name>.tcpart.ranges.w-<id>`` per writer: its
  range, the ranges it made durable, the token and inode of the partial
  file, and a SHA-256 of its own content.  It is replaced only by its own
  writer, atomically (temporary name, ``fsync``, ``rename``, directory
  ``fsync``), after an ``fdatasync`` of the partial file, so it never claims
  a byte that is not on media; no writer ever writes another's record.

What is durable is the union of the records that the storage backs, read
back on every call (:func:`inspect`): a record that is torn or edited, of
another object (token, inode, size), claiming bytes outside its range or
past the end of the partial file (truncated since) is refused and counts for
nothing, so the bytes it claimed are written again.  A record claiming past
the end is also removed the first time it is read back, so that it is not
believed once other ranges' writes grow the file past the cut again.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

import attrs

from transfercore.contract import RangeWriter, Reader
from transfercore.driverkit import TOKEN_HEX, fsync_dir, never_written_error, new_token
from transfercore.errors import InvalidWrite, RestartRejected, from_oserror
from transfercore.ranges import ByteRange, RangeSet

from . import names, sealed
from .fsutil import remove_quietly
from .reader import PosixReader
from .sidecar import SidecarRecord
from .writer import PosixWriter

ANCHOR_FORMAT = "transfercore-posix-ranges"
RECORD_FORMAT = "transfercore-posix-range-writer"
VERSION = 1
_WRITER_ID = re.compile(names.WRITER_ID)
_RW = os.O_RDWR | os.O_CLOEXEC


class Refused(ValueError):
    """A record the storage cannot back; the message says why."""


@attrs.frozen
class Anchor:
    size: int
    token: str
    ino: int


@attrs.frozen
class WriterRecord:
    writer: str
    size: int
    token: str
    ino: int
    span: ByteRange
    ranges: RangeSet


@attrs.frozen
class RangeState:
    """What the storage holds of an object with range writers, as read now."""

    anchor: Anchor | None
    #: The union of every accepted record.
    durable: RangeSet = RangeSet()
    #: Accepted records, by directory entry.
    records: dict[str, WriterRecord] = attrs.field(factory=dict)
    #: Refused record entries and why.
    refused: tuple[tuple[str, str], ...] = ()
    #: Why the anchor itself cannot be used ("" when it can, or when there is none).
    dead: str = ""


# -- encoding --------------------------------------------------------------------------


def _encode(body: dict[str, object]) -> bytes:
    return sealed.seal(body)


def _decode(data: bytes, fmt: str) -> dict[str, object]:
    try:
        return sealed.unseal(data, fmt, VERSION)
    except sealed.Unsealed as exc:
        raise Refused(f"it {exc}") from None


def _whole(doc: dict[str, object], *keys: str) -> list[int]:
    out = []
    for key in keys:
        value = doc.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise Refused(f"bad {key} {value!r}")
        out.append(value)
    return out


def _token(doc: dict[str, object]) -> str:
    token = doc.get("token")
    if not isinstance(token, str) or not re.fullmatch(rf"[0-9a-f]{{{TOKEN_HEX}}}", token):
        raise Refused("bad token")
    return token


def encode_anchor(anchor: Anchor) -> bytes:
    return _encode({"format": ANCHOR_FORMAT, "version": VERSION, "size": anchor.size, "token": anchor.token,
                    "ino": anchor.ino})


def decode_anchor(data: bytes) -> Anchor:
    doc = _decode(data, ANCHOR_FORMAT)
    size, ino = _whole(doc, "size", "ino")
    return Anchor(size=size, token=_token(doc), ino=ino)


def encode_record(record: WriterRecord) -> bytes:
    return _encode({"format": RECORD_FORMAT, "version": VERSION, "writer": record.writer, "size": record.size,
                    "token": record.token, "ino": record.ino, "span": str(record.span),
                    "ranges": str(record.ranges)})


def decode_record(data: bytes) -> WriterRecord:
    doc = _decode(data, RECORD_FORMAT)
    size, ino = _whole(doc, "size", "ino")
    writer = doc.get("writer")
    if not isinstance(writer, str) or not _WRITER_ID.fullmatch(writer):
        raise Refused(f"bad writer id {writer!r}")
    try:
        span_set = RangeSet.parse(str(doc["span"]))
        text = str(doc["ranges"])
        ranges = RangeSet.parse(text) if text else RangeSet()
    except KeyError as exc:
        raise Refused(f"lacks {exc.args[0]!r}") from None
    except ValueError as exc:
        raise Refused(f"bad ranges ({exc})") from None
    if len(span_set) != 1:
        raise Refused(f"bad span {doc['span']!r}")
    span = span_set.ranges[0]
    if not RangeSet((span,)).contains(ranges):
        raise Refused(f"claims {ranges - RangeSet((span,))}, outside its own range {span}")
    if span.end > size:
        raise Refused(f"its range {span} goes past its size {size}")
    return WriterRecord(writer=writer, size=size, token=_token(doc), ino=ino, span=span, ranges=ranges)


# -- storing ---------------------------------------------------------------------------


def _write_temp(directory: str, name: str, data: bytes) -> str:
    temp = os.path.join(directory, names.ranges_temp_name(name))
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        remove_quietly(temp)
        raise
    os.close(fd)
    return temp


def store_record(directory: str, name: str, record: WriterRecord) -> None:
    """Replace one writer's record durably and atomically."""
    final = os.path.join(directory, names.range_record_name(name, record.writer, record.span.start, record.span.end))
    temp = ""
    try:
        temp = _write_temp(directory, name, encode_record(record))
        os.replace(temp, final)
    except OSError as exc:
        if temp:
            remove_quietly(temp)
        raise from_oserror(exc, f"cannot write the range record {final}") from exc
    fsync_dir(directory)


def _read_small(path: str) -> bytes | None:
    try:
        return sealed.read(path, "the range writers' record")
    except sealed.Unsealed as exc:
        raise Refused(f"it {exc}") from None


def load_anchor(directory: str, name: str) -> Anchor | None:
    data = _read_small(os.path.join(directory, names.ranges_anchor_name(name)))
    return None if data is None else decode_anchor(data)


def _open_data(directory: str, name: str, anchor: Anchor) -> tuple[int | None, str]:
    partial = os.path.join(directory, names.partial_name(name, anchor.token))
    try:
        fd = os.open(partial, _RW)
    except FileNotFoundError:
        return None, "the partial file its anchor names is gone"
    except OSError as exc:
        raise from_oserror(exc, f"cannot open the partial file {partial}") from exc
    if os.fstat(fd).st_ino != anchor.ino:
        os.close(fd)
        return None, "the partial file was replaced since its anchor was written"
    return fd, ""


def _named_span(entry: str, prefix: str) -> tuple[int, int] | None:
    start, _, rest = entry[len(prefix):].partition("-")
    end, _, _wid = rest.partition("-")
    if not (start.isdigit() and end.isdigit()):
        return None
    return int(start), int(end)


def inspect(directory: str, name: str, *, fd: int | None = None, span: ByteRange | None = None) -> RangeState:
    """Read the records of ``name`` back from the storage and check them:
    every record, or those whose range (named in the entry) overlaps ``span``."""
    try:
        anchor = load_anchor(directory, name)
    except Refused as exc:
        return RangeState(anchor=None, dead=f"its ranges anchor cannot be trusted: {exc}")
    if anchor is None:
        return RangeState(anchor=None)
    own = fd is None
    if fd is None:
        fd, why = _open_data(directory, name, anchor)
        if fd is None:
            return RangeState(anchor=anchor, dead=why)
    try:
        return _read_records(directory, name, anchor, fd, span)
    finally:
        if own:
            os.close(fd)


def _read_records(directory: str, name: str, anchor: Anchor, fd: int, span: ByteRange | None) -> RangeState:
    prefix = names.range_record_prefix(name)
    try:
        entries = sorted(e for e in os.listdir(directory) if e.startswith(prefix))
    except OSError as exc:
        raise from_oserror(exc, f"cannot list {directory}") from exc
    records: dict[str, WriterRecord] = {}
    refused: list[tuple[str, str]] = []
    durable = RangeSet()
    for entry in entries:
        named = _named_span(entry, prefix)
        if span is not None and named is not None and not (named[0] < span.end and span.start < named[1]):
            continue  # another range's writer: nothing of it can be resumed here
        try:
            data = _read_small(os.path.join(directory, entry))
            if data is None:
                continue  # replaced or removed meanwhile
            record = decode_record(data)
            if entry != names.range_record_name(name, record.writer, record.span.start, record.span.end):
                raise Refused(f"its name does not match its writer {record.writer!r} and range {record.span}")
            if (record.token, record.ino) != (anchor.token, anchor.ino):
                raise Refused("it belongs to another partial file (token or inode differ)")
            if record.size != anchor.size:
                raise Refused(f"it was made for size {record.size}, the object has {anchor.size}")
        except Refused as exc:
            refused.append((entry, str(exc)))
            continue
        records[entry] = record
    # The file's size after the records were read: a writer stores its record
    # only after its bytes are in the file, so a record read before this fstat
    # never looks longer than the file unless the file was cut short since.
    held = os.fstat(fd).st_size
    for entry, record in list(records.items()):
        if record.ranges.end() > held:
            del records[entry]
            # Removed, not only passed over: once other writers grow the file
            # again, the bytes it claimed read back as a hole of zeros and the
            # record would look backed.  Removing a record only costs a rewrite.
            remove_quietly(os.path.join(directory, entry))
            refused.append((entry, f"it claims bytes up to {record.ranges.end()}, the partial file holds {held}"))
        else:
            durable = durable | record.ranges
    return RangeState(anchor=anchor, durable=durable, records=records, refused=tuple(refused))


def _create(directory: str, name: str, size: int, display: str) -> None:
    """Create the partial file and its anchor, unless another writer did first."""
    token = new_token()
    partial = os.path.join(directory, names.partial_name(name, token))
    try:
        fd = os.open(partial, _RW | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise from_oserror(exc, f"cannot create the partial file of {display}") from exc
    try:
        ino = os.fstat(fd).st_ino
    finally:
        os.close(fd)
    temp = ""
    try:
        temp = _write_temp(directory, name, encode_anchor(Anchor(size=size, token=token, ino=ino)))
        # link() fails if the name exists: of writers racing here, exactly one anchor wins.
        os.link(temp, os.path.join(directory, names.ranges_anchor_name(name)))
    except FileExistsError:
        remove_quietly(partial)
    except OSError as exc:
        remove_quietly(partial)
        raise from_oserror(exc, f"cannot create the ranges anchor of {display}") from exc
    finally:
        if temp:
            remove_quietly(temp)
    fsync_dir(directory)


def join(directory: str, name: str, size: int, display: str) -> tuple[Anchor, int]:
    """The object's anchor and an open descriptor of its partial file, created if need be."""
    for _attempt in range(2):
        try:
            anchor = load_anchor(directory, name)
        except Refused as exc:
            raise RestartRejected(f"cannot write {display} by ranges: its anchor cannot be trusted ({exc})",
                                  hint="discard the partial object and start again") from None
        if anchor is None:
            _create(directory, name, size, display)
            continue
        if anchor.size != size:
            raise RestartRejected(f"cannot write {display} by ranges: its partial object was started with size "
                                  f"{anchor.size}, not {size}", hint="discard the partial object and start again")
        fd, why = _open_data(directory, name, anchor)
        if fd is None:
            raise RestartRejected(f"cannot write {display} by ranges: {why}",
                                  hint="discard the partial object and start again")
        return anchor, fd
    raise RestartRejected(f"cannot write {display} by ranges: its anchor vanished while it was joined",
                          hint="another party discarded the partial object; start again")


# -- the writer ------------------------------------------------------------------------


class _SpanFile(PosixWriter):
    """The POSIX writer's write path and durable points, with this writer's own record."""

    def __init__(self, *, writer_id: str, span: ByteRange, anchor: Anchor, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._writer_id = writer_id
        self._span = span
        self._anchor = anchor

    def _store_record(self, snapshot: RangeSet) -> RangeSet:
        store_record(self.directory, self._name, WriterRecord(
            writer=self._writer_id, size=self.size, token=self._anchor.token, ino=self._anchor.ino,
            span=self._span, ranges=snapshot))
        return snapshot


class PosixRangeWriter(RangeWriter):
    def __init__(self, inner: _SpanFile, span: ByteRange, writer_id: str, display: str) -> None:
        self._inner = inner
        self._span = span
        self._span_set = RangeSet((span,)) if span.length else RangeSet()
        self._writer_id = writer_id
        self._display = display

    @property
    def size(self) -> int:
        return self._inner.size

    @property
    def span(self) -> ByteRange:
        return self._span

    @property
    def writer_id(self) -> str:
        return self._writer_id

    @property
    def resumed(self) -> RangeSet:
        return self._inner.resumed

    @property
    def partial_path(self) -> str:
        return self._inner.partial_path

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        length = memoryview(data).nbytes
        if type(offset) is int and length and not (self._span.start <= offset and offset + length <= self._span.end):
            raise InvalidWrite(f"write {offset}-{offset + length} to {self._display} is outside writer "
                               f"{self._writer_id}'s range {self._span}",
                               hint="each range writer writes only the range it was opened for")
        self._inner.write(offset, data)

    def durable(self) -> RangeSet:
        return self._inner.durable()

    def read_durable(self, offset: int, buffer: bytearray | memoryview) -> None:
        self._inner.read_durable(offset, buffer)

    def finish(self) -> RangeSet:
        marker = self._inner.durable()
        missing = self._span_set - marker
        if missing:
            raise never_written_error(self._display, missing)
        self._inner.abort()  # releases the descriptors; the record stays for the coordinator
        return marker

    def abort(self) -> None:
        self._inner.abort()

    def __repr__(self) -> str:
        return f"PosixRangeWriter({self._display!r}, {self._span}, {self._writer_id!r})"


def open_range_writer(directory: str, name: str, display: str, size: int, span: ByteRange, writer_id: str,
                      *, serial_pwrite: bool, drop_read_back: bool) -> PosixRangeWriter:
    if not isinstance(writer_id, str) or not _WRITER_ID.fullmatch(writer_id):
        raise InvalidWrite(f"range writer id {writer_id!r} of {display} is not 1-64 letters, digits, '-' or '_'")
    if not isinstance(span, ByteRange) or span.end > size:
        raise InvalidWrite(f"range {span} of {display} is not inside its size {size}")
    anchor, fd = join(directory, name, size, display)
    try:
        state = inspect(directory, name, fd=fd, span=span)
        resumed = state.durable & RangeSet((span,)) if span.length else RangeSet()
        st = os.fstat(fd)
        inner = _SpanFile(
            writer_id=writer_id, span=span, anchor=anchor,
            fd=fd, directory=directory, name=name, display=display,
            record=SidecarRecord(size=size, ranges=resumed, dev=st.st_dev, ino=st.st_ino, token=anchor.token),
            resumed=resumed, record_stored=False, serial_pwrite=serial_pwrite, direct=None,
            drop_read_back=drop_read_back,
        )
    except BaseException:
        os.close(fd)
        raise
    return PosixRangeWriter(inner, span, writer_id, display)


# -- the coordinator -------------------------------------------------------------------


def durable_ranges(directory: str, name: str, size: int, display: str) -> RangeSet:
    state = inspect(directory, name)
    if state.dead:
        raise RestartRejected(f"cannot resume {display} by ranges: {state.dead}",
                              hint="discard the partial object and start again")
    if state.anchor is None:
        return RangeSet()
    if state.anchor.size != size:
        raise RestartRejected(f"cannot resume {display} by ranges: its partial object was started with size "
                              f"{state.anchor.size}, not {size}", hint="discard the partial object and start again")
    return state.durable


def publish(directory: str, name: str, size: int, display: str, verify: Callable[[Reader], None] | None,
            *, drop_fetched: bool) -> None:
    """Refuse unless the durable union covers the object; verify; rename; clear the records."""
    try:
        anchor = load_anchor(directory, name)
    except Refused as exc:
        raise InvalidWrite(f"cannot publish {display}: its ranges anchor cannot be trusted ({exc})") from None
    if anchor is None:
        raise InvalidWrite(f"cannot publish {display}: no range writer ever wrote it",
                           hint="run the range writers first")
    if anchor.size != size:
        raise InvalidWrite(f"cannot publish {display}: it was written for size {anchor.size}, not {size}")
    fd, why = _open_data(directory, name, anchor)
    if fd is None:
        raise InvalidWrite(f"cannot publish {display}: {why}")
    try:
        state = inspect(directory, name, fd=fd)
        missing = state.durable.complement(size)
        if missing:
            raise InvalidWrite(
                f"cannot publish {display}: the range writers made durable only {state.durable or 'nothing'} "
                f"(missing {missing})", hint="run the range writers of the missing ranges, then publish again")
        held = os.fstat(fd).st_size
        if held != size:
            raise InvalidWrite(f"cannot publish {display}: its partial file holds {held} bytes, not {size}")
        os.fsync(fd)
        if verify is not None:
            reader = PosixReader(os.dup(fd), size, display, drop_fetched=drop_fetched)
            with reader:
                verify(reader)
        partial = os.path.join(directory, names.partial_name(name, anchor.token))
        try:
            os.rename(partial, os.path.join(directory, name))
        except OSError as exc:
            raise from_oserror(exc, f"cannot publish {display}; the partial data is kept") from exc
    finally:
        os.close(fd)
    fsync_dir(directory)
    # The anchor first: records without it are never read.
    remove_quietly(os.path.join(directory, names.ranges_anchor_name(name)))
    # Then the writer records, and the temporaries of writers killed between writing one and renaming it.
    prefix = names.ranges_anchor_name(name)
    pattern = names.leftover_pattern(name)
    try:
        entries = [e for e in os.listdir(directory) if e.startswith(prefix) and pattern.fullmatch(e)]
    except OSError:
        entries = []
    for entry in entries:
        remove_quietly(os.path.join(directory, entry))
    fsync_dir(directory)


__all__ = ["Anchor", "PosixRangeWriter", "RangeState", "Refused", "WriterRecord", "durable_ranges", "inspect",
           "open_range_writer", "publish", "store_record"]
