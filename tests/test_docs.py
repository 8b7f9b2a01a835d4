"""The code in the docs runs: the guide's driver passes the conformance kit, the embedding example copies."""

from __future__ import annotations

import os
import re
import sys
import tomllib
from pathlib import Path

import pytest

from transfercore.registry import refresh
from transfercore.testing.runner import format_report, run_kit

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _blocks(page: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", (DOCS / page).read_text(), re.S)


def _installed(site: Path, name: str, entry_points: dict[str, str], files: dict[str, str]) -> None:
    """Lay ``files`` out in ``site`` as an installed distribution registering ``entry_points``."""
    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[transfercore.drivers]\n{lines}")
    (info / "top_level.txt").write_text("".join({f.split("/")[0] + "\n" for f in files}))
    for relative, text in files.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_text(text)


@pytest.fixture
def guide_driver(tmp_path, monkeypatch):
    """The driver of docs/writing-a-driver.md, installed as its packaging section says."""
    (code,) = [b for b in _blocks("writing-a-driver.md", "python") if b.startswith("# transfercore_tiny/driver.py")]
    (packaging,) = [tomllib.loads(b) for b in _blocks("writing-a-driver.md", "toml")]
    entry_points = packaging["project"]["entry-points"]["transfercore.drivers"]
    site = tmp_path / "site"
    _installed(site, packaging["project"]["name"], entry_points,
               {"transfercore_tiny/__init__.py": "", "transfercore_tiny/driver.py": code})
    monkeypatch.syspath_prepend(str(site))
    # the kit's crash and syscall clauses run the driver in child processes
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    refresh()
    yield next(iter(entry_points))
    refresh()
    for module in [m for m in sys.modules if m.startswith("transfercore_tiny")]:
        del sys.modules[module]


@pytest.mark.fuse
def test_the_guides_driver_passes_every_clause_of_the_conformance_kit(guide_driver, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    report = run_kit(f"{guide_driver}://{scratch}")
    # NOT RUN is not a pass: this machine has FUSE and strace, so every clause must run.
    assert not report.failed() and not report.not_run(), format_report(report, verbose=True)
    passed = {r.clause.name for r in report.results if r.outcome.name == "PASS"}
    assert {"durable", "resumable", "syncs", "durable-power-loss", "atomic-publish"} <= passed, format_report(report)


def test_the_embedding_example_copies_and_verifies(tmp_path, monkeypatch):
    (example,) = [b for b in _blocks("embedding.md", "python") if "asyncio.run(main())" in b]
    source, backup = tmp_path / "in.bin", tmp_path / "backup"
    source.write_bytes(os.urandom(300_000))
    backup.mkdir()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    code = example.replace("/data/in.bin", str(source)).replace("/backup/in.bin", str(backup / "in.bin"))
    exec(compile(code, "docs/embedding.md", "exec"), {"__name__": "__main__"})
    assert (backup / "in.bin").read_bytes() == source.read_bytes()
    assert (tmp_path / "state/transfercore/journal.sqlite").exists()
