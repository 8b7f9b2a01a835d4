"""Value objects the mock stores hand out."""

from __future__ import annotations

import attrs

from transfercore.ranges import RangeSet


@attrs.frozen
class PartialRecord:
    """The durable resume record of an unfinished object."""

    size: int
    ranges: RangeSet
    #: Random, chosen when the partial object is created: a writer whose token
    #: no longer matches was overtaken by a fresh write or a discard.
    token: str


@attrs.frozen
class ObjectMeta:
    size: int
    mtime_ns: int
    identity: str
