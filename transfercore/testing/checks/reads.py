"""Readers: exact bytes at any offset, and bad offsets refused with InvalidRead."""

from __future__ import annotations

from typing import Any

from transfercore.errors import InvalidRead

from ..clause import Clause, Violation, require
from ..subject import Subject, describe_ranges, differing


def check_reads(s: Subject) -> str:
    data = s.data()
    size = len(data)
    path = s.new_path("reads")
    writer = s.driver.open_write(path, size)
    s.write_ranges(writer, data, s.blocks())
    writer.complete()
    writer.close()
    with s.driver.open_read(path) as reader:
        require(reader.size == size, f"reader.size is {reader.size}, expected {size}")
        spans = [(0, size), (size // 3, s.block + 7), (size - 5, 10), (size, 10), (0, 0)]
        spans += [(s.random.randrange(size), s.random.randrange(1, 2 * s.block)) for _ in range(6)]
        for offset, length in spans:
            got = reader.read(offset, length)
            want = data[offset : offset + length]
            require(got == want, f"read({offset}, {length}) returned {len(got)} bytes differing from the object "
                                 f"at {describe_ranges(differing(want, got))}")
        if not s.caps.ordered_writes:
            buffer = bytearray(s.block)
            reader.readinto(s.block // 2, buffer)
            require(bytes(buffer) == data[s.block // 2 : s.block // 2 + s.block],
                    f"readinto({s.block // 2}, {s.block} bytes) filled the buffer with other bytes")
        bad: list[tuple[Any, Any, str]] = [(-1, 10, "a negative offset"), (size + 1, 1, f"an offset past the size {size}"),
               (0, -1, "a negative length"), ("0", 1, "an offset that is not a whole number"),
               (1.5, 1, "a fractional offset")]
        for offset, length, what in bad:
            try:
                got = reader.read(offset, length)
            except InvalidRead:
                continue
            except Exception as exc:  # noqa: BLE001 - the evidence names the wrong error
                raise Violation(f"read({offset!r}, {length!r}) with {what} raised {type(exc).__name__}: {exc}, "
                                "expected InvalidRead") from exc
            raise Violation(f"read({offset!r}, {length!r}) with {what} returned {len(got)} bytes, expected "
                            "InvalidRead (contract.check_read does this check)")
    return f"{len(spans)} reads at chosen and random offsets, and {len(bad)} bad offsets and lengths refused"


CLAUSES = (
    Clause(
        "reads",
        "A reader returns exactly the stored bytes at any offset (short only at the end), and raises "
        "InvalidRead for a negative or fractional offset, an offset past the size or a negative length.",
        check_reads,
    ),
)
