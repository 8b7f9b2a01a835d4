"""One object written as a multipart upload; acknowledged parts are the restart marker.

A part is sent as soon as all its bytes have arrived (at once when one write
covers it, else from a buffer the writes fill), by the thread whose write
completed it, so ``max_writers`` threads upload that many parts at a time and
in any order.  ``upload_part`` returns only after the store checked the
part's checksum and acknowledged it: from then its bytes are in the marker,
and the store's ``ListParts`` says so to any later resume, on any machine.
"""

from __future__ import annotations

import hashlib
import threading

from transfercore import RangeSet, Writer
from transfercore.driverkit import Intervals, check_write, never_written_error, overlap_error
from transfercore.errors import StorageError, WriterClosed

from .layout import LAYOUT_PART, Layout
from .store import Part, Store, multipart_etag


class S3Writer(Writer):
    def __init__(
        self,
        store: Store,
        key: str,
        layout: Layout,
        checksum: str,
        upload_id: str | None,
        resumed: dict[int, Part] | None = None,
    ) -> None:
        self._store, self._key, self._layout, self._checksum = store, key, layout, checksum
        #: None: the object is small and goes as one PUT in complete().
        self._upload_id = upload_id
        self._where = store.where(key)
        self._acked: dict[int, Part] = dict(resumed or {})
        self._resumed = layout.ranges(self._acked) if self._acked else RangeSet()
        self._accepted = Intervals(self._resumed)
        self._buffers: dict[int, bytearray] = {}
        self._filled: dict[int, Intervals] = {}
        self._lock = threading.Lock()
        self._open = True
        self._failed: BaseException | None = None

    @property
    def size(self) -> int:
        return self._layout.size

    @property
    def resumed(self) -> RangeSet:
        return self._resumed

    @property
    def upload_id(self) -> str | None:
        return self._upload_id

    def _check_open(self) -> None:
        if not self._open:
            raise WriterClosed(f"the writer of {self._where} is closed", hint="open a new writer to resume")
        if self._failed is not None:
            raise StorageError(f"an earlier part of {self._where} failed: {self._failed}", hint="run the copy again to resume")

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self._check_open()
        view = memoryview(data).cast("B")
        end = check_write(offset, view.nbytes, self.size, self._where)
        if end == offset:
            return
        with self._lock:
            if self._accepted.overlaps(offset, end):
                raise overlap_error(self._where, offset, end)
            self._accepted.add(offset, end)
        ready: list[tuple[int, bytes]] = []
        number = self._layout.first(offset)
        while True:
            start, stop = self._layout.span(number)
            if start >= end:
                break
            lo, hi = max(start, offset), min(stop, end)
            piece = view[lo - offset : hi - offset]
            if (lo, hi) == (start, stop):
                ready.append((number, bytes(piece)))
            else:
                with self._lock:
                    buffer = self._buffers.setdefault(number, bytearray(stop - start))
                    buffer[lo - start : hi - start] = piece
                    filled = self._filled.setdefault(number, Intervals())
                    filled.add(lo, hi)
                    if filled.covers(start, stop):
                        ready.append((number, bytes(self._buffers.pop(number))))
                        del self._filled[number]
            number += 1
        for number, body in ready:
            self._send(number, body)

    def _send(self, number: int, body: bytes) -> None:
        if self._upload_id is None:
            with self._lock:
                self._buffers[0] = bytearray(body)  # the whole small object, PUT by complete()
            return
        try:
            etag = self._store.upload_part(self._key, self._upload_id, number, body, self._checksum)
        except BaseException as exc:
            self._failed = exc
            raise
        if self._checksum == "md5" and etag.strip('"') != hashlib.md5(body).hexdigest():
            self._failed = StorageError(f"part {number} of {self._where}: the store's ETag {etag} is not the MD5 sent")
            raise self._failed
        with self._lock:
            self._acked[number] = Part(number, len(body), etag)

    def durable(self) -> RangeSet:
        self._check_open()
        with self._lock:
            numbers = list(self._acked)
        # acknowledged parts are already durable as far as the store promises
        return self._layout.ranges(numbers) if numbers else RangeSet()

    def complete(self) -> None:
        self._check_open()
        with self._lock:
            if not self._accepted.covers(0, self.size):
                missing = RangeSet.span(0, self.size) - self._accepted.to_rangeset()
                raise never_written_error(self._where, missing)
        if self._upload_id is None:
            self._store.put(self._key, bytes(self._buffers.pop(0, b"")), self._checksum)
            self._open = False
            return
        self._verify_and_publish(self._upload_id)
        self._open = False

    def _verify_and_publish(self, upload_id: str) -> None:
        """Publish only an upload whose listed parts are exactly the layout's, each
        the one this writer sent or resumed, and check the object the store made."""
        expected = [self._acked.get(n) for n in range(1, self._layout.count + 1)]
        listed = {p.number: p for p in self._store.parts(self._key, upload_id) if p.number != LAYOUT_PART}
        for number in range(1, self._layout.count + 1):
            mine, theirs = expected[number - 1], listed.get(number)
            start, stop = self._layout.span(number)
            if mine is None or theirs is None or theirs.etag != mine.etag or theirs.size != stop - start:
                raise StorageError(
                    f"cannot publish {self._where}: part {number} is not the one sent "
                    f"(sent {mine}, the store lists {theirs})",
                    hint="the upload was changed by someone else; copy again",
                )
        extra = sorted(set(listed) - set(range(1, self._layout.count + 1)))
        if extra:
            raise StorageError(f"cannot publish {self._where}: the store lists unexpected parts {extra}")
        parts = [listed[n] for n in range(1, self._layout.count + 1)]
        etag = self._store.complete_upload(self._key, upload_id, parts)
        want = multipart_etag(parts)
        head = self._store.head(self._key)
        if head is None or int(head["ContentLength"]) != self.size or (want is not None and etag != want):
            got = "nothing" if head is None else f"{head['ContentLength']} bytes, ETag {etag}"
            raise StorageError(f"{self._where} was published as {got}, not {self.size} bytes with ETag {want}")

    def abort(self) -> None:
        # the acknowledged parts stay in the store for a resume; buffered bytes are dropped
        self._open = False
        with self._lock:
            self._buffers.clear()
            self._filled.clear()
