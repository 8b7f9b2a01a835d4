"""Every ``--json`` line the command line prints follows the documented schema.

The tables of docs/engine.md (single files) and docs/trees.md (trees) are
read here and every line of real ``copy --json`` and ``copy -r --json`` runs
(a fresh copy, an up-to-date rerun, a failure, a tree with a skipped entry
and a failed file) is checked against them, both ways: no undocumented
field, no documented field missing, and on every line ``schema``, ``time``
and the journal's id.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMON = {"event", "schema", "time"}


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _ticked(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


def single_file_schema() -> dict[str, set[str]]:
    """kind -> documented fields, from docs/engine.md's field table and kind table."""
    text = (ROOT / "docs/engine.md").read_text()
    section = text[text.index("The whole schema, version 1:"):]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    kinds = {_ticked(_cells(r)[0])[0] for r in rows if len(_cells(r)) == 3 and _cells(r)[1].startswith("`")
             and _cells(r)[1][1:2].isupper()}
    fields: dict[str, set[str]] = {k: set() for k in kinds}
    for row in rows:
        name, where, _ = _cells(row)
        if where.startswith("`") and where[1:2].isupper():
            continue  # the kind table
        targets = kinds if where == "all" else set(_ticked(where))
        assert targets <= kinds, (row, targets - kinds)
        for kind in targets:
            fields[kind].update(_ticked(name))
    return fields


def tree_schema() -> dict[str, set[str]]:
    text = (ROOT / "docs/trees.md").read_text()
    section = text[text.index("## Output"):]
    section = section[: section.index("\n\n", section.index("| event | fields |"))]
    out = {}
    for row in section.splitlines():
        if row.startswith("| `"):
            kind, described = _cells(row)
            out[_ticked(kind)[0]] = set(_ticked(described))
    return out


def run(*args: str, env: dict[str, str], ok: bool = True) -> tuple[list[dict], float, float]:
    began = time.time()
    proc = subprocess.run([sys.executable, "-m", "transfercore", "copy", "--json", *args],
                          capture_output=True, text=True, timeout=120, env=env)
    assert (proc.returncode == 0) == ok, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()], began, time.time()


def check_lines(lines: list[dict], schema: dict[str, set[str]], id_field: str, began: float, ended: float,
                always: set[str] = frozenset()) -> set[str]:
    seen = set()
    for line in lines:
        kind = line["event"]
        assert kind in schema, f"undocumented event {kind!r}: {line}"
        seen.add(kind)
        assert line["schema"] == 1
        assert began - 1 <= line["time"] <= ended + 1
        assert id_field in line, line
        documented = schema[kind] | COMMON | {id_field} | always
        assert set(line) == documented, (
            f"{kind}: undocumented {sorted(set(line) - documented)}, missing {sorted(documented - set(line))}")
    return seen


def test_single_file_lines_follow_docs_engine_md(tmp_path):
    schema = single_file_schema()
    assert {"start", "progress", "marker", "done", "up-to-date", "error", "interrupted"} <= set(schema)
    env = os.environ | {"XDG_STATE_HOME": str(tmp_path / "state")}
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 << 20))
    lines, t0, t1 = run(str(src), str(tmp_path / "dst.bin"), env=env)
    seen = check_lines(lines, schema, "transfer_id", t0, t1)
    assert {"start", "marker", "verify", "done"} <= seen
    ids = {line["transfer_id"] for line in lines}
    assert len(ids) == 1 and isinstance(ids.pop(), int)
    again, t0, t1 = run(str(src), str(tmp_path / "dst.bin"), env=env)
    assert check_lines(again, schema, "transfer_id", t0, t1) == {"up-to-date"}
    # the mock driver's injected fault: a write that fails mid-copy
    failed, t0, t1 = run(str(src), f"mock://x/y?fail_after={1 << 20}", env=env, ok=False)
    assert check_lines(failed, schema, "transfer_id", t0, t1) >= {"start", "error"}


def test_tree_lines_follow_docs_trees_md(tmp_path):
    schema = tree_schema()
    assert {"tree-start", "file-done", "file-error", "tree-done", "skipped"} <= set(schema)
    env = os.environ | {"XDG_STATE_HOME": str(tmp_path / "state")}
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    for i in range(3):
        (src / "sub" / f"f{i}").write_bytes(os.urandom(1000 + i))
    (src / "top.txt").write_text("top")
    os.mkfifo(src / "a.fifo")  # skipped with --skip-specials
    lines, t0, t1 = run("-r", "--skip-specials", str(src), str(tmp_path / "out"), env=env)
    seen = check_lines(lines, schema, "campaign", t0, t1)
    assert {"tree-start", "file-done", "skipped", "tree-done"} <= seen
    campaigns = {line["campaign"] for line in lines}
    assert len(campaigns) == 1 and isinstance(campaigns.pop(), int)
    # a file that fails (its destination name is taken by a directory)
    (tmp_path / "out2" / "top.txt").mkdir(parents=True)
    lines, t0, t1 = run("-r", "--skip-specials", str(src), str(tmp_path / "out2"), env=env, ok=False)
    assert "file-error" in check_lines(lines, schema, "campaign", t0, t1)


def test_the_walks_progress_line_follows_docs_trees_md():
    # (a walk reports only after 0.5 s, longer than a test's trees take: the line is made here)
    from transfercore.campaign.events import TreeWalking, envelope

    line = envelope(TreeWalking(3, 512, 500, 4096, 0.5), None)
    assert set(line) - COMMON == tree_schema()["tree-walk"]
    assert line["campaign"] == 3 and line["schema"] == 1
