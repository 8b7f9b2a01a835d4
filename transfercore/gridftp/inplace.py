"""The bytes an in-place update (``ESTO``) keeps, copied into the new version (I/O).

An ``ESTO A <offset>`` replaces one slice of an object and keeps its other
bytes.  Writing the slice into the object itself would leave it half updated
(or, cut short, corrupt) under its final name; instead the whole new version
is written through a driver writer, under the driver's partial name, and
published at once like any upload.  The plan (:meth:`.upload.StorePlan.kept`)
says which ranges are kept; this module copies them from the object as it is,
and zeros past its end, as the Globus server's sparse file reads there.
"""

from __future__ import annotations

import threading

from ..contract import Driver, Reader, Writer
from ..errors import InvalidWrite, TransferAborted
from ..ranges import RangeSet
from .errors import ReplyError

COPY_BLOCK = 4 * 1024 * 1024
_ZEROS = memoryview(bytes(COPY_BLOCK))


def copy_kept(
    driver: Driver, path: str, base: int, writer: Writer, ranges: RangeSet, stop: threading.Event
) -> None:
    """Write ``ranges`` of the object at ``path`` (``base`` bytes when planned) into ``writer``, in order."""
    if not ranges:
        return
    reader: Reader | None = None
    try:
        if ranges & RangeSet.span(0, base):
            reader = driver.open_read(path)
            if reader.size != base:
                raise ReplyError(
                    451,
                    f"{path} changed during the update: it held {base} bytes, now {reader.size}; "
                    "it was left as it is.",
                    hint="send the update again",
                )
        for r in ranges:
            pos = r.start
            while pos < r.end:
                if stop.is_set():
                    raise TransferAborted("transfer aborted while copying the bytes the update keeps")
                n = min(COPY_BLOCK, r.end - pos)
                if pos < base:
                    assert reader is not None
                    n = min(n, base - pos)
                    writer.write(pos, reader.read(pos, n))
                else:
                    writer.write(pos, _ZEROS[:n])
                pos += n
    finally:
        if reader is not None:
            reader.close()


class SliceWriter:
    """Passes writes of the upload's slice to ``writer``; data past the announced end are refused.

    An update's object extends past its slice (the kept tail): without this a
    sender could write there, unannounced.
    """

    def __init__(self, writer: Writer, end: int) -> None:
        self._writer = writer
        self._end = end

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        if offset + len(data) > self._end:
            raise InvalidWrite(
                f"data at {offset}-{offset + len(data)} go past the announced end {self._end} of the upload",
                hint="announce the size of the data with ALLO",
            )
        self._writer.write(offset, data)
