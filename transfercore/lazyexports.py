"""Names a package re-exports, each loaded from its module on first use (PEP 562).

``import transfercore`` (and ``transfercore.engine``) must cost almost
nothing: a driver imports the contract, a tree copy of small files needs only
the engine's options, and each would otherwise load the engine, SQLite,
stevedore or asyncio it never uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, tuple[str, ...]], namespace: dict[str, Any], public: list[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: ``exports`` maps a
    module (relative to the package) to the names it provides; a name that is
    the module's own last part is the module itself."""
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        module_name = where.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(module_name, package)
        value = module if module_name.rsplit(".", 1)[-1] == name else getattr(module, name)
        namespace[name] = value  # later uses find it without this function
        return value

    def __dir__() -> list[str]:
        return sorted(public)

    return __getattr__, __dir__


__all__ = ["lazy_exports"]
