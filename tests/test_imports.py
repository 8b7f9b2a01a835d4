"""No import circles in the core, the drivers or the DSI.

Every import counts, also those under ``if TYPE_CHECKING:`` and those
deferred into a function: a circle hidden that way still ties two modules'
designs together.  The circles known today are listed; a new one fails, and
so does a listed one that is gone (strike it from the list).
"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent

#: Circles outside the modules this test was written with; each should be broken, then struck off.
KNOWN: set[frozenset[str]] = set()


def _packages() -> dict[str, pathlib.Path]:
    roots = {"transfercore": ROOT / "transfercore"}
    for pattern in ("drivers/*/transfercore_*", "embeddings/*/transfercore_*"):
        for path in ROOT.glob(pattern):
            if (path / "__init__.py").exists():
                roots[path.name] = path
    return roots


def _modules() -> dict[str, tuple[pathlib.Path, bool]]:
    found: dict[str, tuple[pathlib.Path, bool]] = {}
    for root in _packages().values():
        for file in root.rglob("*.py"):
            parts = list(file.relative_to(root.parent).with_suffix("").parts)
            package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if package else parts)] = (file, package)
    return found


def _imports(name: str, file: pathlib.Path, package: bool, known: dict[str, tuple[pathlib.Path, bool]]) -> set[str]:
    here = name.split(".") if package else name.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(here[: len(here) - node.level + 1] + [node.module or ""]) if node.level else node.module
            base = (base or "").rstrip(".")
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    out.add(f"{base}.{alias.name}")
                elif base in known:
                    out.add(base)
    out.discard(name)
    return out


def _circles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.add(frozenset(component))
    return found


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(name, file, package, known) for name, (file, package) in known.items()}


def test_the_graph_sees_the_modules_and_their_imports():
    graph = _graph()
    assert "transfercore.gridftp.server" in graph and "transfercore_posix.driver" in graph
    assert "transfercore.gridftp.transfers" in graph["transfercore.gridftp.server"]
    assert "transfercore.errors" in graph["transfercore.gridftp.transfers"]


def test_the_finder_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {frozenset("abc")}
    assert _circles({"a": {"b"}, "b": set()}) == set()


def test_no_new_import_circles():
    circles = _circles(_graph())
    new = circles - KNOWN
    assert not new, "import circles: " + "; ".join(" <-> ".join(sorted(c)) for c in new)
    gone = KNOWN - circles
    assert not gone, "broken circles still listed in KNOWN: " + "; ".join(sorted(min(c) for c in gone))


def test_the_contract_loads_without_the_engine_sqlite_or_stevedore():
    import subprocess
    import sys

    heavy = ("transfercore.engine", "transfercore.journal", "transfercore.registry", "sqlite3", "stevedore")
    probe = f"import sys, transfercore.contract; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    # ... and the top-level names still load on first use
    probe = "import transfercore; print(transfercore.copy.__module__, transfercore.errors.__name__)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["transfercore.engine.transfer", "transfercore.errors"], out.stderr


def test_a_tree_copy_loads_the_transfer_machinery_only_when_a_transfer_runs():
    import subprocess
    import sys

    heavy = ("asyncio", "transfercore.engine.transfer", "transfercore.engine.aio")
    probe = f"import sys, transfercore.campaign; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    # ... and the engine's names still load on first use
    probe = ("from transfercore.engine import Transfer, copy_async, events, Done; "
             "print(Transfer.__module__, copy_async.__module__, events.__name__, Done.__module__)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["transfercore.engine.transfer", "transfercore.engine.aio",
                                  "transfercore.engine.events", "transfercore.engine.events"], out.stderr


def test_the_core_ships_its_type_marker():
    assert (ROOT / "transfercore" / "py.typed").is_file()
    assert 'transfercore = ["py.typed"]' in (ROOT / "pyproject.toml").read_text()


def test_the_drivers_ship_their_type_markers():
    for driver in ("posix", "mock", "hpss"):
        package = f"transfercore_{driver}"
        assert (ROOT / "drivers" / driver / package / "py.typed").is_file(), package
        assert f'{package} = ["py.typed"]' in (ROOT / "drivers" / driver / "pyproject.toml").read_text(), package
