"""What a tree copy reports: per-file and per-tree events (``--json`` prints them)."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs


class TreeEvent:
    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.kind}
        for field in attrs.fields(type(self)):  # type: ignore[arg-type]
            out[field.name] = getattr(self, field.name)
        return out


@attrs.frozen
class TreeStarted(TreeEvent):
    kind: ClassVar[str] = "tree-start"
    campaign: int
    source: str
    destination: str
    files: int
    bytes: int
    dirs: int
    links: int
    #: Already complete from earlier runs.
    files_done: int
    bytes_done: int


@attrs.frozen
class FileSkipped(TreeEvent):
    kind: ClassVar[str] = "skipped"
    path: str
    reason: str


@attrs.frozen
class FileRepaired(TreeEvent):
    """Recorded complete by an earlier run, but missing or changed at the
    destination: it is copied again."""

    kind: ClassVar[str] = "repair"
    path: str


@attrs.frozen
class FileDiffers(TreeEvent):
    """``--verify`` read it back and it differs from the source: copied again."""

    kind: ClassVar[str] = "verify-differs"
    path: str
    reason: str


@attrs.frozen
class FileDeleted(TreeEvent):
    """``--delete`` removed it: the source no longer has it."""

    kind: ClassVar[str] = "deleted"
    path: str


@attrs.frozen
class FileDone(TreeEvent):
    kind: ClassVar[str] = "file-done"
    path: str
    size: int
    written: int
    checksum: str
    #: Found already published and verified; nothing written.
    reused: bool


@attrs.frozen
class FileFailed(TreeEvent):
    kind: ClassVar[str] = "file-error"
    path: str
    error: str
    message: str
    #: What the destination holds durably for a resume ("" for nothing).
    marker: str


@attrs.frozen
class TreeWalking(TreeEvent):
    """The source is still being read: a large tree's walk takes minutes before ``tree-start``."""

    kind: ClassVar[str] = "tree-walk"
    campaign: int
    #: Entries read so far (files, directories, links), and the files among them with their bytes.
    entries: int
    files: int
    bytes: int
    elapsed: float


@attrs.frozen
class TreeProgress(TreeEvent):
    kind: ClassVar[str] = "tree-progress"
    files_done: int
    files: int
    bytes_done: int
    bytes: int
    failed: int
    elapsed: float
    #: Bytes per second written by this run (over the last few seconds).
    rate: float
    eta: float | None


@attrs.frozen
class TreeDone(TreeEvent):
    kind: ClassVar[str] = "tree-done"
    files: int
    bytes: int
    #: Files written by this run.
    copied: int
    bytes_written: int
    #: Complete before this run started, or found published and verified.
    kept: int
    failed: int
    dirs: int
    links: int
    skipped: int
    elapsed: float
    failures: list[str]
    #: Entries recorded complete that were missing or changed at the destination.
    repaired: int = 0
    #: Partial objects a dead run left: removed, and kept to be resumed.
    partials_removed: int = 0
    partials_resumed: int = 0
    #: With --verify: files read back and found equal to the source, and found different.
    verified: int = 0
    differed: int = 0
    #: With --delete: destination entries removed because the source lacks them.
    deleted: int = 0


def envelope(event: TreeEvent, campaign: int | None) -> dict[str, Any]:
    """The JSON form of a tree event: its fields plus ``schema``, ``time`` and ``campaign``.

    The same schema as a single file's lines (:func:`transfercore.engine.events.envelope`):
    ``campaign`` is the journal's id of the tree's campaign (``transfercore status`` shows it),
    ``null`` before it exists; with ``path``, it names the file's row.
    """
    import time

    from ..engine.events import SCHEMA_VERSION

    out = event.to_dict()
    out["schema"] = SCHEMA_VERSION
    out["time"] = round(time.time(), 6)
    out.setdefault("campaign", campaign)
    return out
