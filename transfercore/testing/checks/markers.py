"""Clauses on restart markers inside one process: sound, monotonic, resumable, checked on resume."""

from __future__ import annotations

from transfercore.capabilities import RestartModel
from transfercore.errors import InvalidWrite, RestartRejected
from transfercore.ranges import ByteRange, RangeSet

from ..clause import Clause, Violation, require
from ..subject import Subject, describe_ranges, differing


def _restartable(s: Subject) -> str | None:
    return "driver declares restart=none" if s.caps.restart is RestartModel.NONE else None


def _check_shape(s: Subject, marker: RangeSet, written: RangeSet, resumed: RangeSet, when: str) -> None:
    allowed = written | resumed
    require(
        allowed.contains(marker),
        f"{when}: durable() returned {marker}, which covers {describe_ranges(marker - allowed)} "
        f"never written (written so far: {allowed or 'nothing'})",
    )
    if s.caps.restart is RestartModel.PREFIX:
        require(marker.total() == marker.prefix_end(),
                f"{when}: driver declares restart=prefix but durable() returned {marker}")
    if s.caps.restart is RestartModel.NONE:
        require(not marker, f"{when}: driver declares restart=none but durable() returned {marker}")


def check_marker_sound(s: Subject) -> str:
    data = s.data()
    path = s.new_path("marker-sound")
    writer = s.driver.open_write(path, len(data))
    written = RangeSet()
    calls = 0
    for block in s.first_half():
        written = written | s.write_ranges(writer, data, [block])
        _check_shape(s, writer.durable(), written, RangeSet(), f"after writing {written}")
        calls += 1
    writer.abort()
    return f"{calls} markers, each within the bytes written ({s.caps.restart.value} model)"


def check_monotonic(s: Subject) -> str:
    data = s.data()
    path = s.new_path("monotonic")
    writer = s.driver.open_write(path, len(data))
    previous = RangeSet()
    blocks = s.first_half()
    for block in blocks:
        s.write_ranges(writer, data, [block])
        marker = writer.durable()
        again = writer.durable()
        for m in (marker, again):
            require(m.contains(previous), f"durable() returned {m} after {previous}: it lost {previous - m}")
            previous = m
    writer.abort()
    if s.caps.restart is RestartModel.NONE or not previous:
        return f"{2 * len(blocks)} markers in one writer"
    resumed_writer = s.driver.open_write(path, len(data), resume=previous)
    marker = resumed_writer.durable()
    require(marker.contains(previous), f"first durable() after resuming from {previous} returned {marker}")
    resumed_writer.abort()
    return f"{2 * len(blocks)} markers in one writer, then a resumed writer's first marker"


def check_resumable(s: Subject) -> str:
    data = s.data()
    path = s.new_path("resumable")
    writer = s.driver.open_write(path, len(data))
    written = s.write_ranges(writer, data, s.first_half())
    marker = writer.durable()
    require(bool(marker), f"durable() returned nothing after {written} was written; a driver declaring "
                          f"restart={s.caps.restart.value} must report what it made durable")
    writer.abort()
    recorded = s.driver.partial(path)
    require(recorded.contains(marker), f"partial() returns {recorded or 'nothing'} but durable() reported {marker}")
    try:
        writer = s.driver.open_write(path, len(data), resume=marker)
    except RestartRejected as exc:
        raise Violation(f"the marker {marker} that durable() returned was rejected on resume: {exc}") from exc
    require(writer.resumed == marker, f"resumed writer reports resumed={writer.resumed}, presented {marker}")
    missing = marker.complement(len(data))
    s.write_ranges(writer, data, missing)
    writer.complete()
    writer.close()
    got = s.read_back(path)
    bad = differing(data, got)
    require(not bad, f"after writing only the complement {missing} of {marker}, the object differs at "
                     f"{describe_ranges(bad)}")
    return f"marker {marker}, complement {missing}"


def check_rejects_unbacked(s: Subject) -> str:
    data = s.data()
    size = len(data)
    first = ByteRange(0, s.block)
    path = s.new_path("unbacked")

    def must_reject(resume: RangeSet, what: str, at_size: int = size) -> None:
        try:
            writer = s.driver.open_write(path, at_size, resume=resume)
        except RestartRejected:
            return
        except Exception as exc:  # noqa: BLE001 - named in the evidence
            raise Violation(f"{what}: raised {type(exc).__name__}: {exc}, expected RestartRejected") from exc
        writer.abort()
        raise Violation(f"{what}: the marker {resume} was accepted, expected RestartRejected")

    must_reject(RangeSet.span(first.start, first.end), "resume of an object that was never written")
    if s.caps.restart is RestartModel.NONE:
        return "a marker for a never-written object"
    writer = s.driver.open_write(path, size)
    s.write_ranges(writer, data, s.first_half())
    marker = writer.durable()
    writer.abort()
    require(bool(marker), "durable() returned nothing after half the object was written")
    last = s.blocks()[-1]
    must_reject(marker | last, f"resume with {marker | last}, more than the durable {marker}")
    must_reject(RangeSet.span(0, size + s.block), f"resume with a marker past the size {size}", size + s.block)
    must_reject(marker, f"resume of {marker} with a different size {size + 1} than was written", size + 1)
    # the rejections must not have damaged what was durable
    try:
        writer = s.driver.open_write(path, size, resume=marker)
    except RestartRejected as exc:
        raise Violation(f"after rejecting bad markers, the true marker {marker} was rejected too: {exc}") from exc
    s.write_ranges(writer, data, marker.complement(size))
    writer.complete()
    writer.close()
    got = s.read_back(path)
    require(got == data, f"after rejected markers the resumed object differs at {describe_ranges(differing(data, got))}")
    return "never-written object, a marker wider than recorded, past the size, a different size"


def ordered_applies(s: Subject) -> str | None:
    return None if s.caps.ordered_writes else "driver accepts writes in any order (round-trip writes them reversed)"


def check_ordered(s: Subject) -> str:
    data = s.data()
    path = s.new_path("ordered")
    blocks = s.blocks()
    writer = s.driver.open_write(path, len(data))

    def must_refuse(block: ByteRange, what: str) -> None:
        try:
            writer.write(block.start, data[block.start : block.end])
        except InvalidWrite:
            return
        raise Violation(f"{what}: the write of {block} was accepted, expected InvalidWrite")

    must_refuse(blocks[1], "first write not at offset 0")
    s.write_ranges(writer, data, [blocks[0]])
    must_refuse(blocks[2], f"write of {blocks[2]} after {blocks[0]} leaves a hole")
    s.write_ranges(writer, data, blocks[1:])
    writer.complete()
    writer.close()
    got = s.read_back(path)
    require(got == data, f"after refused out-of-order writes the object differs at {describe_ranges(differing(data, got))}")
    return "a hole at the start and in the middle were refused"


CLAUSES = (
    Clause(
        "marker-sound",
        "durable() only reports bytes that were written (or resumed), shaped as the restart model "
        "declares: any ranges, a prefix, or nothing.",
        check_marker_sound,
    ),
    Clause("monotonic", "Within one writer every marker contains every earlier one and the resumed marker.", check_monotonic),
    Clause(
        "resumable",
        "partial() records the marker, and writing exactly its complement completes a correct object.",
        check_resumable,
        _restartable,
    ),
    Clause(
        "rejects-unbacked",
        "A marker the storage cannot back (nothing written, wider than recorded, past the size, "
        "another size) raises RestartRejected and harms nothing.",
        check_rejects_unbacked,
    ),
    Clause("ordered-writes", "A driver declaring ordered_writes refuses a write that leaves a hole.", check_ordered, ordered_applies),
)
