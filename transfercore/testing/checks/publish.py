"""Atomic publish: a partial object never shows under its final name."""

from __future__ import annotations

from transfercore.errors import NotFound

from ..clause import Clause, require
from ..subject import Subject, describe_ranges, differing


def atomic_applies(s: Subject) -> str | None:
    return None if s.caps.atomic_publish else "driver does not declare atomic_publish"


def check_atomic_publish(s: Subject) -> str:
    path = s.new_path("atomic")
    half = s.first_half()

    writer = s.driver.open_write(path, s.size)
    fresh = s.data()
    s.write_ranges(writer, fresh, half)
    writer.durable()
    try:
        info = s.driver.stat(path)
    except NotFound:
        pass
    else:
        raise AssertionError(f"a partial new object is visible under its final name (size {info.size})")
    writer.abort()
    try:
        s.driver.stat(path)
    except NotFound:
        pass
    else:
        raise AssertionError("an aborted partial object is visible under its final name")
    writer = s.driver.open_write(path, s.size)
    s.write_ranges(writer, fresh, s.blocks())
    writer.complete()
    writer.close()

    replacement = s.data(s.size + s.block)
    writer = s.driver.open_write(path, len(replacement))
    s.write_ranges(writer, replacement, half)
    writer.durable()
    during = s.read_back(path)
    require(during == fresh, f"while a replacement is written, the final name reads "
                             f"{len(during)} bytes differing at {describe_ranges(differing(fresh, during))}")
    s.write_ranges(writer, replacement, [r for r in s.blocks(len(replacement)) if r not in half])
    writer.complete()
    writer.close()
    after = s.read_back(path)
    require(after == replacement, f"after complete() the replacement reads wrong at "
                                  f"{describe_ranges(differing(replacement, after))}")
    return "a new object and a replacement stayed invisible until complete()"


CLAUSES = (
    Clause(
        "atomic-publish",
        "Where atomic_publish is declared, a partial object (new, aborted or replacing an old one) never "
        "shows under its final name; complete() publishes it whole.",
        check_atomic_publish,
        atomic_applies,
    ),
)
