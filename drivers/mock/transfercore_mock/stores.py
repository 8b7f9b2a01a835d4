"""The process-global registry of mock stores: every driver instance that
names the same store (and directory) shares one, as clients of one server would."""

from __future__ import annotations

import threading

from .dirstore import DirStore
from .store import MemoryStore, MockStore

_REGISTRY: dict[tuple[str, str | None], MockStore] = {}
_REGISTRY_LOCK = threading.Lock()


def get_store(name: str, directory: str | None = None, *, spill: bool = False) -> MockStore:
    """The store called ``name`` (kept in ``directory`` when given), created on first use."""
    key = (name, directory if directory else ("<spill>" if spill else None))
    with _REGISTRY_LOCK:
        store = _REGISTRY.get(key)
        if store is None:
            if directory or spill:
                store = DirStore(name, directory) if directory else DirStore.temporary(name)
            else:
                store = MemoryStore(name)
            _REGISTRY[key] = store
        return store


def reset_stores() -> None:
    """Forget every in-process store (for test isolation); directories are left as they are."""
    with _REGISTRY_LOCK:
        stores = list(_REGISTRY.values())
        _REGISTRY.clear()
    for store in stores:
        close = getattr(store, "cleanup", None)
        if close is not None:
            close()
