"""Watching the source while it is copied: a change means the copy would mix two versions.

A stat at each marker stops the copy early; the last look, before the
object is published, also reads the identity's samples again (see
:mod:`.identity`).
"""

from __future__ import annotations

from ..contract import ObjectInfo, Reader
from ..errors import NotFound, SourceChanged
from ..journal import SourceIdentity
from ..registry import Endpoint
from .identity import changes_during, stat_changes


class SourceWatch:
    """The source at ``src`` (named ``url`` to the user), as ``before`` and ``identity`` saw it."""

    def __init__(
        self, src: Endpoint, url: str, before: ObjectInfo, identity: SourceIdentity, reader: Reader
    ) -> None:
        self._src = src
        self._url = url
        self._before = before
        self._identity = identity
        self._reader = reader

    def watch(self) -> None:
        """A stat of the source at each marker: a change stops the copy early
        instead of after the last byte (the samples are read only at the end)."""
        what = stat_changes(self._before, self._stat())
        if what:
            raise SourceChanged(self._changed_message(", ".join(what)))

    def check_unchanged(self) -> None:
        """The last look before the name appears: the stat and the samples."""
        what = changes_during(self._before, self._stat(), self._identity, self._reader)
        if what:
            raise SourceChanged(self._changed_message(", ".join(what)))

    def _stat(self) -> ObjectInfo | None:
        try:
            return self._src.driver.stat(self._src.path)
        except NotFound:
            return None

    def _changed_message(self, what: str) -> str:
        return (
            f"source {self._url} changed during the transfer ({what}): nothing was published and the "
            "partial copy was discarded; copy it again to get the new version"
        )
