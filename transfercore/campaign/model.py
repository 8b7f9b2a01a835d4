"""What a tree campaign records of each entry of the source namespace."""

from __future__ import annotations

import enum

import attrs

from ..contract import ObjectInfo


class Kind(enum.Enum):
    FILE = "file"
    DIR = "dir"
    LINK = "link"
    #: Another name of a file met earlier in the walk (``link`` holds that file's path).
    HARDLINK = "hardlink"


class FileState(enum.Enum):
    """Where one entry of a campaign stands."""

    #: Never handed to a worker: no partial state of ours can exist at the destination.
    PENDING = "pending"
    #: Handed to a worker: the destination may hold partial state (or, if the
    #: run stopped between publishing and recording, the published object).
    STARTED = "started"
    #: Stopped with a durable restart marker at the destination.
    PARTIAL = "partial"
    #: Published, verified and durable under its final name.
    COMPLETE = "complete"
    #: The last attempt failed; the next run tries again.
    FAILED = "failed"


@attrs.frozen
class Entry:
    """One entry of the source tree, as the walk saw it."""

    #: Path relative to the tree's root, ``/``-separated, never empty.
    rel: str
    kind: Kind
    size: int = 0
    mtime_ns: int = 0
    mode: int = 0o644
    identity: str = ""
    #: A symbolic link's target, verbatim.
    link: str | None = None


@attrs.frozen
class Record:
    """One entry as the campaign journal holds it."""

    entry: Entry
    state: FileState
    marker: str = ""
    checksum: str = ""
    message: str = ""
    #: What the destination held when the entry was published ("" when unknown).
    dst: str = ""


def dst_facts(info: ObjectInfo, *, version: bool = True) -> str:
    """What a later run compares of a published object: size, modification
    time, the driver's identity and version of it.  Without ``version`` (an
    object with several names, whose version moves whenever a name is
    added), the first three only."""
    return f"{info.size}:{info.mtime_ns}:{info.identity}:{info.version if version else ''}"


def facts_match(recorded: str, info: ObjectInfo) -> bool:
    """Whether ``info`` still shows what was ``recorded`` (see :func:`dst_facts`)."""
    return recorded == dst_facts(info, version=not recorded.endswith(":"))
