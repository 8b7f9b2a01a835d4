"""MODE E (extended block mode) framing, without I/O.

Each block is a 17-byte big-endian header ``descriptor, count, offset``
followed by ``count`` bytes of file data at ``offset``.  A decoder is fed the
bytes of *one* data connection in arbitrary chunks and yields events; an
EOF block carries, in its offset field, how many EODs the whole transfer will
send over all connections, which is the only reliable end-of-data signal.

Data are yielded as they arrive (a block may come out in several pieces), so
a hostile count never makes the decoder buffer more than one chunk.
"""

from __future__ import annotations

import enum
import struct

import attrs

from ..ranges import MAX_OFFSET
from .errors import BadBlockHeader, LocalProtocolError, RemoteProtocolError

HEADER = struct.Struct("!BQQ")
HEADER_SIZE = HEADER.size  # 17

#: A block larger than this is refused.  Globus sends 256 KiB by default and
#: ``-bs`` rarely goes past a few MiB; anything bigger is a broken or hostile peer.
DEFAULT_MAX_BLOCK = 1 << 30

#: EOF announces how many EODs follow; more data connections than this is absurd.
MAX_EOD_COUNT = 1 << 16


class Desc(enum.IntFlag):
    """Descriptor bits of a block header."""

    EOR = 0x80
    EOF = 0x40
    ERRORS = 0x20
    RESTART = 0x10
    EOD = 0x08
    CLOSE = 0x04


_KNOWN = int(Desc.EOR | Desc.EOF | Desc.ERRORS | Desc.RESTART | Desc.EOD | Desc.CLOSE)
# Plain ints for the per-block tests: an operation on an IntFlag member makes a new member.
_EOF, _EOD, _CLOSE, _ERRORS, _RESTART = (int(d) for d in (Desc.EOF, Desc.EOD, Desc.CLOSE, Desc.ERRORS, Desc.RESTART))


@attrs.frozen
class Data:
    """``data`` belongs at file ``offset`` (a view of the reader's buffer when decoded without copies)."""

    offset: int
    data: bytes | memoryview


@attrs.frozen
class EndOfData:
    """The sender will send no more data on this connection (EOD)."""

    close: bool


@attrs.frozen
class EndOfFile:
    """The transfer consists of ``eod_count`` EODs in total, over all connections."""

    eod_count: int


Event = Data | EndOfData | EndOfFile


@attrs.frozen
class BlockHeader:
    desc: int
    count: int
    offset: int

    @property
    def eod(self) -> bool:
        return bool(self.desc & Desc.EOD)

    @property
    def eof(self) -> bool:
        """An EOF block; its :attr:`offset` is then the EOD count."""
        return bool(self.desc & Desc.EOF)


def parse_header(raw: bytes, *, max_block: int = DEFAULT_MAX_BLOCK) -> BlockHeader:
    """Validate one 17-byte header; :class:`BadBlockHeader` for anything GridFTP does not send."""
    desc, count, offset = HEADER.unpack(raw)
    if desc & ~_KNOWN:
        raise BadBlockHeader(f"MODE E descriptor 0x{desc:02x} has unknown bits 0x{desc & ~_KNOWN:02x}")
    if desc & _ERRORS:
        raise BadBlockHeader("the sender marked a MODE E block as containing suspected errors; refusing it")
    if desc & _RESTART:
        raise BadBlockHeader("MODE E restart-marker blocks are not used by GridFTP; refusing the block")
    if count > max_block:
        raise BadBlockHeader(f"MODE E block of {count} bytes exceeds the limit of {max_block}")
    if desc & _EOF:
        # The offset field of an EOF block is the EOD count, not a file offset.
        if count:
            raise BadBlockHeader(f"MODE E EOF block carries {count} data bytes; EOF blocks carry none")
        if offset < 1 or offset > MAX_EOD_COUNT:
            raise BadBlockHeader(f"MODE E EOF block announces {offset} EODs; expected 1 to {MAX_EOD_COUNT}")
    elif offset + count > MAX_OFFSET:
        raise BadBlockHeader(f"MODE E block at offset {offset} + {count} bytes passes the largest offset")
    return BlockHeader(desc, count, offset)


class ModeEDecoder:
    """Decode the blocks of one MODE E data connection.

    ``receive(chunk)`` returns the events the chunk completes.  After EOD the
    decoder is :attr:`done`; bytes that follow (a cached connection's next
    transfer) are kept in :attr:`trailing` instead of being decoded.

    A reader that wants no copies asks :meth:`wanted` how many bytes to read
    next (the rest of a header, or up to ``limit`` bytes of block data), reads
    exactly that into its own buffer and passes it with ``copy=False``: the
    :class:`Data` events then hold views of that buffer, valid until it is
    reused.  When the connection ends, :meth:`connection_closed` says whether
    that was legal.
    """

    def __init__(self, *, max_block: int = DEFAULT_MAX_BLOCK) -> None:
        self._max_block = max_block
        self._header = bytearray()
        self._remaining = 0  # data bytes of the current block still to come
        self._offset = 0  # file offset of the next data byte of the current block
        self._pending_flags = 0  # EOD/EOF bits of the current block, acted on after its data
        self._eof_count: int | None = None
        self._done = False
        self._started = False
        self.trailing = b""
        self.bytes_received = 0

    @property
    def done(self) -> bool:
        return self._done

    @property
    def in_block(self) -> bool:
        """Whether a header has been read and its data are not complete (a cut here is a truncation)."""
        return bool(self._header) or self._remaining > 0

    @property
    def reading_header(self) -> bool:
        """Whether the next bytes belong to a block header (not to block data)."""
        return self._remaining == 0

    def wanted(self, limit: int) -> int:
        """Bytes to read next: the rest of a header, or up to ``limit`` bytes of the current block."""
        if self._done:
            return 0
        if self._remaining:
            return min(self._remaining, limit)
        return HEADER_SIZE - len(self._header)

    def connection_closed(self) -> None:
        """The peer closed the connection; :class:`RemoteProtocolError` unless that was legal.

        Legal after EOD, and on a cached connection that carried nothing of
        this transfer (the sender gave it up between transfers).
        """
        if self._done or not (self._started or self.in_block):
            return
        if self.in_block:
            raise RemoteProtocolError(
                "a MODE E data connection closed in the middle of a block; the upload is incomplete"
            )
        raise RemoteProtocolError(
            "a MODE E data connection closed before its EOD block; the upload is incomplete"
        )

    def receive(self, chunk: bytes | bytearray | memoryview, *, copy: bool = True) -> list[Event]:
        if self._done:
            self.trailing += bytes(chunk)
            return []
        events: list[Event] = []
        view = memoryview(chunk).cast("B")
        pos = 0
        n = len(view)
        while pos < n:
            if self._remaining:
                take = min(self._remaining, n - pos)
                piece = view[pos : pos + take]
                events.append(Data(self._offset, bytes(piece) if copy else piece))
                self._offset += take
                self._remaining -= take
                self.bytes_received += take
                pos += take
                if not self._remaining:
                    self._finish_block(events)
                continue
            if self._done:
                self.trailing = bytes(view[pos:])
                break
            need = HEADER_SIZE - len(self._header)
            self._header += view[pos : pos + need]
            pos += min(need, n - pos)
            if len(self._header) == HEADER_SIZE:
                self._start_block(events)
        return events

    def _start_block(self, events: list[Event]) -> None:
        header = parse_header(bytes(self._header), max_block=self._max_block)
        self._header.clear()
        self._started = True
        if header.desc & _EOF:
            if self._eof_count is not None:
                raise BadBlockHeader("MODE E EOF sent twice on one connection")
            self._eof_count = header.offset
            events.append(EndOfFile(header.offset))
        self._offset = header.offset
        self._remaining = header.count
        self._pending_flags = header.desc & (_EOD | _CLOSE)
        if not self._remaining:
            self._finish_block(events)

    def _finish_block(self, events: list[Event]) -> None:
        if self._pending_flags & _EOD:
            events.append(EndOfData(close=bool(self._pending_flags & _CLOSE)))
            self._done = True
        self._pending_flags = 0


# -- encoding -----------------------------------------------------------------


def encode_header(desc: int, count: int, offset: int) -> bytes:
    if desc & ~_KNOWN or desc < 0:
        raise LocalProtocolError(f"descriptor 0x{desc:02x} has unknown bits")
    if not (0 <= count <= MAX_OFFSET and 0 <= offset <= MAX_OFFSET):
        raise LocalProtocolError(f"count {count} / offset {offset} out of range")
    return HEADER.pack(desc, count, offset)


def encode_block(offset: int, data: bytes | memoryview, *, eod: bool = False) -> bytes:
    """Header and data of one block (``eod`` ends the connection's data with it)."""
    if offset + len(data) > MAX_OFFSET:
        raise LocalProtocolError(f"block at {offset} + {len(data)} passes the largest offset")
    return encode_header(int(Desc.EOD) if eod else 0, len(data), offset) + bytes(data)


def encode_eod(*, close: bool = True) -> bytes:
    return encode_header(int(Desc.EOD | (Desc.CLOSE if close else 0)), 0, 0)


def encode_eof_eod(eod_count: int, *, close: bool = True) -> bytes:
    """EOF+EOD on the last connection: the transfer consists of ``eod_count`` EODs."""
    if not 1 <= eod_count <= MAX_EOD_COUNT:
        raise LocalProtocolError(f"EOD count {eod_count} out of range")
    return encode_header(int(Desc.EOF | Desc.EOD | (Desc.CLOSE if close else 0)), 0, eod_count)


class EndTracker:
    """Whether a MODE E transfer over several connections has ended.

    Complete when an EOF has announced ``n`` EODs and ``n`` EODs have arrived,
    whatever the number of sockets still open.
    """

    def __init__(self) -> None:
        self.expected: int | None = None
        self.seen = 0

    def feed(self, event: Event) -> None:
        if isinstance(event, EndOfFile):
            if self.expected is not None and self.expected != event.eod_count:
                raise BadBlockHeader(
                    f"MODE E EOF blocks disagree on the number of EODs ({self.expected} vs {event.eod_count})"
                )
            self.expected = event.eod_count
            if self.seen > self.expected:
                raise BadBlockHeader(f"received {self.seen} EODs but EOF announced {self.expected}")
        elif isinstance(event, EndOfData):
            self.seen += 1
            if self.expected is not None and self.seen > self.expected:
                raise BadBlockHeader(f"received {self.seen} EODs but EOF announced {self.expected}")

    @property
    def complete(self) -> bool:
        return self.expected is not None and self.seen == self.expected
