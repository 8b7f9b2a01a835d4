"""``SIGHUP``: build the settings again and apply them, or keep the running ones.

Applying them is the server's business (new sessions take the new settings,
sessions in progress finish under the ones they started with); this module
decides whether there is anything to apply and says what happened in the log.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

log = logging.getLogger("transfercore.service")


class Built(Protocol):
    @property
    def args(self) -> argparse.Namespace: ...


class Reloader:
    """Calls ``build`` (which raises a project error for a bad configuration) and then ``apply``."""

    def __init__(
        self,
        build: Callable[[], Any],
        apply: Callable[[Any], None],
        *,
        current: Built,
        restart_only: Sequence[str] = (),
        counted: Callable[[str], None] | None = None,
        said: str = "reload: configuration, users, grid-mapfile and CRLs read again; new sessions use them",
    ) -> None:
        self._said = said
        self._build = build
        self._apply = apply
        self.current = current
        self._restart_only = restart_only
        self._counted = counted

    def reload(self) -> bool:
        """Reload now; ``False`` when the new settings were refused (the running ones stay)."""
        try:
            new = self._build()
        except Exception as exc:  # noqa: BLE001 - a bad file must never stop a running server
            log.error("reload refused, the running settings stay: %s", exc)
            self._count("refused")
            return False
        pending = [
            key for key in self._restart_only
            if getattr(new.args, key, None) != getattr(self.current.args, key, None)
        ]
        if pending:
            log.warning("reload: %s change only at a restart; the running values stay",
                        ", ".join(k.replace("_", "-") for k in pending))
            for key in pending:
                setattr(new.args, key, getattr(self.current.args, key, None))
        try:
            self._apply(new)
        except Exception as exc:  # noqa: BLE001
            log.error("reload refused, the running settings stay: %s", exc)
            self._count("refused")
            return False
        self.current = new
        log.info(self._said)
        self._count("ok")
        return True

    def _count(self, result: str) -> None:
        if self._counted is not None:
            self._counted(result)


__all__ = ["Reloader"]
