"""``--delete``: the destination made to hold nothing the source lacks.

Runs only after a copy in which every entry succeeded, so a run that failed
part-way (a source that could not be read, a full disk) never removes
anything.  The destination is listed one directory at a time; a name the
current walk did not see in the matching source directory is removed (a
directory with everything below it).  Names the walk saw but did not copy
(devices, FIFOs, sockets skipped as expected) are left alone, and so is
the driver's own bookkeeping, which its listing never shows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from ..contract import Driver, ObjectInfo
from ..errors import NotFound, TransferCoreError
from .store import Campaign, CampaignStore
from .walk import join


def _rel(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


class Mirror:
    def __init__(self, store: CampaignStore, campaign: Campaign, driver: Driver, root: str,
                 protect: Collection[str], on_delete: Callable[[str], None]) -> None:
        self.store = store
        self.campaign = campaign
        self.driver = driver
        self.root = root
        self.protect = protect
        self.on_delete = on_delete
        self.deleted = 0
        self.failures: list[tuple[str, str]] = []

    def _path(self, rel: str) -> str:
        return join(self.root, rel) if rel else self.root

    def run(self) -> int:
        pending = [""]
        while pending:
            rel_dir = pending.pop()
            keep = self.store.children(self.campaign, rel_dir)
            try:
                listing = list(self.driver.scan(self._path(rel_dir)))
            except NotFound:
                continue
            for info in listing:
                rel = _rel(rel_dir, info.name)
                kind = keep.get(info.name)
                if kind is not None:
                    if kind == "dir" and info.is_dir and info.link is None:
                        pending.append(rel)
                    continue
                if rel in self.protect:
                    continue
                self._remove(rel, info)
        return self.deleted

    def _remove(self, rel: str, info: ObjectInfo) -> None:
        try:
            if info.is_dir and info.link is None:
                for child in list(self.driver.scan(self._path(rel))):
                    self._remove(_rel(rel, child.name), child)
                self.driver.rmdir(self._path(rel))
            else:
                self.driver.remove(self._path(rel))
        except TransferCoreError as exc:
            self.failures.append((rel, f"not deleted: {exc}"))
            return
        self.deleted += 1
        self.on_delete(rel)
