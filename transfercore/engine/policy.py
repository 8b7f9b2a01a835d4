"""When the engine asks the destination for a durability point: the core's :class:`MarkerPolicy`.

The rule (every ``interval`` seconds or ``bytes`` bytes, whichever comes
first, and once at the end) is shared with ``serve`` and the DSI; it lives in
:mod:`transfercore.markers`.
"""

from __future__ import annotations

from ..markers import DEFAULT_BYTES, DEFAULT_INTERVAL, MarkerPolicy

__all__ = ["DEFAULT_BYTES", "DEFAULT_INTERVAL", "MarkerPolicy"]
