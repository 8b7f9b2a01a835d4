"""Where transfercore keeps its state: ``$XDG_STATE_HOME/transfercore``.

The XDG base-directory rules put state that should survive a reboot but is
not user data (resume journals, history) under ``XDG_STATE_HOME``, which
defaults to ``~/.local/state``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

APP = "transfercore"
JOURNAL_NAME = "journal.sqlite"


def state_home(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    value = env.get("XDG_STATE_HOME", "")
    # The spec says a relative value is invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    return Path(env.get("HOME") or os.path.expanduser("~")) / ".local" / "state"


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The project's state directory (not created)."""
    return state_home(environ) / APP


def default_journal_path(environ: Mapping[str, str] | None = None) -> Path:
    return state_dir(environ) / JOURNAL_NAME
