"""Shared fixtures: a throwaway distribution that registers drivers from outside the project."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from transfercore.registry import refresh

GOOD = '''
from transfercore.capabilities import Capabilities, RestartModel
from transfercore.contract import Driver
from transfercore.options import int_option


class ThirdDriver(Driver):
    name = "third"
    options = {"depth": int_option("how deep", default=3)}

    def capabilities(self):
        return Capabilities(restart=RestartModel.NONE, max_writers=2)

    def describe(self):
        return {"backend": "made-up"}

    def stat(self, path):
        raise NotImplementedError

    def open_write(self, path, size, resume=None):
        raise NotImplementedError

    def open_read(self, path):
        raise NotImplementedError
'''


def make_distribution(root: Path, name: str, entry_points: dict[str, str], modules: dict[str, str]) -> Path:
    """Lay out an installed distribution (a ``.dist-info`` with entry points) in ``root``."""
    info = root / f"{name.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[transfercore.drivers]\n{lines}\n")
    (info / "top_level.txt").write_text("".join(f"{module}\n" for module in modules))
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    return root


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A good driver ``third`` and a broken one ``brokenone`` from outside the project, on sys.path."""
    root = make_distribution(
        tmp_path / "site",
        "thirdparty-drivers",
        {"third": "third_driver:ThirdDriver", "brokenone": "broken_driver:Nope"},
        {"third_driver": GOOD, "broken_driver": "import module_that_is_not_installed\n"},
    )
    monkeypatch.syspath_prepend(str(root))
    refresh()
    yield root
    refresh()
