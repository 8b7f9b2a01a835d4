"""Many writers of one object (capability ``range_writers``): the union of what
each made durable, nothing more, one publish.

Each writer is opened from its own driver instance, as a writer in another
process or on another host would be, and the union is read back through yet
another: nothing may pass from one writer to another in memory.
"""

from __future__ import annotations

from transfercore.contract import RangeWriter
from transfercore.errors import InvalidWrite, NotFound
from transfercore.ranges import ByteRange, RangeSet

from ..clause import Clause, require
from ..subject import Subject, describe_ranges, differing


def applies(s: Subject) -> str | None:
    return None if s.caps.range_writers else "driver does not declare range_writers"


def _spans(s: Subject) -> tuple[ByteRange, ByteRange]:
    cut = 4 * s.block
    return ByteRange(0, cut), ByteRange(cut, s.size)


def _write(s: Subject, writer: RangeWriter, data: bytes, span: ByteRange) -> RangeSet:
    """Write the bytes of ``span`` not already durable, in blocks; return what was written."""
    written = RangeSet()
    for piece in RangeSet((span,)) - writer.resumed:
        for start in range(piece.start, piece.end, s.block):
            end = min(start + s.block, piece.end)
            writer.write(start, data[start:end])
        written = written | piece
    return written


def check_union(s: Subject) -> str:
    path = s.new_path("ranges-union")
    data = s.data()
    a_span, b_span = _spans(s)
    # Writer a makes half its range durable, writes on, and is killed (abandoned, never finished).
    killed = s.fresh_driver().open_range_write(path, s.size, a_span, "a")
    _write(s, killed, data, ByteRange(0, 2 * s.block))
    kept = killed.durable()
    require(kept.contains(ByteRange(0, 2 * s.block)),
            f"writer a's durable() returned {kept or 'nothing'} after writing 0-{2 * s.block}")
    killed.write(2 * s.block, data[2 * s.block:3 * s.block])
    # Writer b, another process, writes its whole range and finishes.
    other = s.fresh_driver().open_range_write(path, s.size, b_span, "b")
    _write(s, other, data, b_span)
    b_marker = other.finish()
    require(b_marker.contains(b_span), f"writer b's finish() returned {b_marker}, not its whole range {b_span}")
    union = s.fresh_driver().durable_ranges(path, s.size)
    require(union.contains(kept | b_marker),
            f"the union read back is {union or 'nothing'}; it lacks {(kept | b_marker) - union}, which writers "
            "made durable")
    # The killed writer's range, taken over: what it made durable is never written again.
    again = s.fresh_driver().open_range_write(path, s.size, a_span, "a-again")
    require(again.resumed.contains(kept), f"a new writer of {a_span} resumes {again.resumed or 'nothing'}, not "
                                          f"the killed writer's durable {kept}")
    _write(s, again, data, a_span)
    again.finish()
    killed.abort()
    s.fresh_driver().publish_ranges(path, s.size)
    got = s.read_back(path)
    require(got == data, f"the published object reads {len(got)} bytes, differing at "
                         f"{describe_ranges(differing(data, got))}")
    return (f"writer a killed with {kept} durable, writer b finished {b_span}; the union read back by another "
            f"instance held both, a new writer resumed {again.resumed} and the object published whole")


def check_claims(s: Subject) -> str:
    path = s.new_path("ranges-claims")
    data = s.data()
    a_span, b_span = _spans(s)
    a = s.fresh_driver().open_range_write(path, s.size, a_span, "a")
    _write(s, a, data, ByteRange(0, 2 * s.block))
    marker = a.durable()
    _write(s, a, data, ByteRange(2 * s.block, a_span.end))  # written, never made durable
    b = s.fresh_driver().open_range_write(path, s.size, b_span, "b")
    _write(s, b, data, b_span)  # written, never made durable
    union = s.fresh_driver().durable_ranges(path, s.size)
    require(marker.contains(union),
            f"the union read back claims {union - marker}, which no writer made durable (writer a's marker is "
            f"{marker}; writer b never called durable())")
    joined = s.fresh_driver().open_range_write(path, s.size, b_span, "b-again")
    require(not joined.resumed, f"a new writer of {b_span} resumes {joined.resumed}, which no writer made durable")
    joined.abort()
    try:
        s.fresh_driver().publish_ranges(path, s.size)
    except InvalidWrite:
        pass
    else:
        raise AssertionError("publish_ranges() published an object whose ranges were not all durable")
    try:
        s.driver.stat(path)
    except NotFound:
        pass
    else:
        raise AssertionError("a refused publish_ranges() left an object under the final name")
    for w in (a, b):
        w.abort()
    return f"with only {marker} made durable, the union read back was {union or 'nothing'} and publish was refused"


CLAUSES = (
    Clause(
        "range-writers-union",
        "Where range_writers is declared, independent writers (separate driver instances) each make their own "
        "range durable; the union read back holds what each made durable, a killed writer's durable bytes are "
        "resumed (never rewritten) by a new writer of its range, and one publish gives the whole object.",
        check_union,
        applies,
    ),
    Clause(
        "range-writers-claims",
        "Where range_writers is declared, the union read back never claims a byte no writer made durable "
        "(written but not made durable counts for nothing), and publish_ranges() refuses an object that is not "
        "all durable.",
        check_claims,
        applies,
    ),
)
