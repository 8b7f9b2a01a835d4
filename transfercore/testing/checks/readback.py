"""Read-back before publishing: ``Writer.read_durable`` returns the stored bytes of the marker, nothing else."""

from __future__ import annotations

from collections.abc import Callable

from transfercore.contract import Writer
from transfercore.errors import InvalidRead, InvalidWrite
from transfercore.ranges import ByteRange, RangeSet

from ..clause import Clause, Violation, require
from ..subject import Subject, describe_ranges, differing


def read_back_applies(s: Subject) -> str | None:
    if s.caps.read_back:
        return None
    return (
        "driver does not declare read_back: the engine can verify its objects only after publishing them "
        "(a mismatch is found once the object has its final name, and the object is then removed). "
        "Implementing Writer.read_durable and declaring read_back avoids that"
    )


def _read(writer: Writer, offset: int, length: int) -> bytes:
    buffer = bytearray(length)
    writer.read_durable(offset, buffer)
    return bytes(buffer)


def _refused(what: str, action: Callable[[], object]) -> None:
    try:
        action()
    except (InvalidRead, InvalidWrite):
        return
    except Exception as exc:  # noqa: BLE001 - the evidence names the wrong error
        raise Violation(f"{what}: raised {type(exc).__name__}: {exc}, expected InvalidRead or InvalidWrite") from exc
    raise Violation(f"{what}: returned bytes, expected a refusal (InvalidRead or InvalidWrite)")


def _check_inside(s: Subject, writer: Writer, data: bytes, marker: RangeSet, when: str) -> int:
    reads = 0
    for rng in marker:
        for start in range(rng.start, rng.end, s.block):
            end = min(start + s.block, rng.end)
            got = _read(writer, start, end - start)
            want = data[start:end]
            require(got == want, f"{when}, read_durable({start}, {end - start} bytes) inside the marker {marker} "
                                 f"returned other bytes than were written, at "
                                 f"{describe_ranges(differing(want, got))}")
            reads += 1
    first = next(iter(marker))
    if first.length > 2:  # a read that starts and ends inside a range
        got = _read(writer, first.start + 1, first.length - 2)
        require(got == data[first.start + 1 : first.end - 1],
                f"{when}, read_durable({first.start + 1}, {first.length - 2} bytes) returned other bytes")
        reads += 1
    return reads


def check_read_back(s: Subject) -> str:
    data = s.data()
    size = len(data)
    path = s.new_path("read-back")
    writer = s.driver.open_write(path, size)
    half = s.first_half()
    s.write_ranges(writer, data, half)
    marker = writer.durable()
    require(bool(marker), f"durable() after writing {describe_ranges(RangeSet(half))} returned an empty marker: "
                          "nothing to read back")
    reads = _check_inside(s, writer, data, marker, "after the first marker")

    # Bytes outside the marker: never written, then written but not made durable yet.
    missing = marker.complement(size)
    gap = next(iter(missing))
    _refused(f"read_durable({gap.start}, {min(gap.length, s.block)} bytes) of bytes never written, outside the "
             f"marker {marker}", lambda: _read(writer, gap.start, min(gap.length, s.block)))
    if gap.start > 0:
        _refused(f"read_durable({gap.start - 1}, 2 bytes) straddling the end of the marker {marker}",
                 lambda: _read(writer, gap.start - 1, 2))
    _refused(f"read_durable({size - 1}, 2 bytes) past the size {size}", lambda: _read(writer, size - 1, 2))
    _refused("read_durable(-1, 1 byte)", lambda: _read(writer, -1, 1))
    pending = ByteRange(gap.start, min(gap.end, gap.start + s.block))
    s.write_ranges(writer, data, [pending])
    _refused(f"read_durable({pending.start}, {pending.length} bytes) of bytes written after the marker {marker} "
             "and not made durable", lambda: _read(writer, pending.start, pending.length))

    rest = missing - RangeSet([pending])
    s.write_ranges(writer, data, s.pieces(rest))
    final = writer.durable()
    require(final.contains(RangeSet.span(0, size)),
            f"after every byte was written, durable() returned {final}, not the whole object")
    reads += _check_inside(s, writer, data, final, "after the final marker")
    writer.complete()
    writer.close()
    got = s.read_back(path)
    require(got == data, f"the completed object reads wrong at {describe_ranges(differing(data, got))}")
    return (f"{reads} reads inside the marker matched what was written, and bytes never written, written but not "
            "durable, straddling the marker, past the size and at a negative offset were refused")


CLAUSES = (
    Clause(
        "read-back",
        "Where read_back is declared, Writer.read_durable returns the stored bytes of any span inside the "
        "latest marker (the engine verifies with it before publishing), and refuses a span outside it with "
        "InvalidRead or InvalidWrite.",
        check_read_back,
        read_back_applies,
    ),
)
