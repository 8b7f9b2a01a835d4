"""Multi-file sessions as operators run them: globus-url-copy -r with -fast (data-channel caching).

Trees of 100+ files, empty files and empty directories go up into ``serve``
and back down, over posix and over hpss (the emulator), with ``-p 4 -fast``
and with ``-cc 4 -p 2 -fast``; every file must end identical.
"""

from __future__ import annotations

import filecmp
import os
import random
import subprocess
from pathlib import Path

import pytest

from .conftest import needs_globus

pytestmark = [pytest.mark.globus, needs_globus]


def make_tree(base: Path, files: int = 110) -> None:
    rnd = random.Random(7)
    sizes = [0, 0, 1, 17, 4096, 70_000, 300_001]
    for i in range(files):
        d = base / f"d{i % 5}" / ("sub" if i % 3 == 0 else "")
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.bin").write_bytes(rnd.randbytes(rnd.choice(sizes)))
    (base / "empty" / "emptier").mkdir(parents=True)
    (base / "empty2").mkdir()


def same_tree(a: Path, b: Path) -> None:
    """Fails with what differs: names (empty directories included) and the bytes of every file."""
    names_a = sorted(str(p.relative_to(a)) for p in a.rglob("*"))
    names_b = sorted(str(p.relative_to(b)) for p in b.rglob("*") if not p.name.startswith(".hpss"))
    assert names_a == names_b
    files = [n for n in names_a if (a / n).is_file()]
    _, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert (mismatch, errors) == ([], [])


def guc(*args: str) -> None:
    proc = subprocess.run(["globus-url-copy", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


@pytest.mark.parametrize("flags", [("-p", "4", "-fast"), ("-cc", "4", "-p", "2", "-fast")], ids=["p4", "cc4p2"])
@pytest.mark.parametrize("driver", ["posix", "hpss"])
def test_recursive_tree_up_and_down(serve, root, tmp_path, monkeypatch, driver, flags):
    tree = tmp_path / "tree"
    make_tree(tree)
    if driver == "posix":
        srv = serve("--root", str(root), "--anonymous-write")
        stored = root / "t"
    else:
        emu = tmp_path / "emu"
        emu.mkdir()
        monkeypatch.setenv("HPSS_EMU_ROOT", str(emu))
        # The default 4 MiB PIO block: buffers a session must not pile up, file after file.
        srv = serve("--driver", "hpss:///?segment=4MiB", "--anonymous-write")
        stored = emu / "t"
    guc("-r", "-cd", *flags, f"file://{tree}/", srv.url("/t/"))
    same_tree(tree, stored)
    down = tmp_path / "down"
    guc("-r", "-cd", *flags, srv.url("/t/"), f"file://{down}/")
    same_tree(tree, down)
    assert len(list(tree.rglob("*.bin"))) >= 100
    # Each file's buffers are given back when it is done (HPSS: 8 MiB a file, held in
    # reference cycles until collected): 110 files stay far below 110 x 8 MiB.
    assert peak_rss_mib(srv.proc.pid) < 200


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_data_connections_are_reused_between_files(serve, root, tmp_path):
    """With -fast the client sends PASV once for many files: the server keeps the connections."""
    tree = tmp_path / "tree"
    make_tree(tree, files=12)
    srv = serve("--root", str(root), "--anonymous-write")
    proc = subprocess.run(
        ["globus-url-copy", "-dbg", "-r", "-cd", "-p", "4", "-fast", f"file://{tree}/", srv.url("/t/")],
        capture_output=True, text=True, timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert out.count("\nSTOR ") == 12
    assert out.count("\nPASV") + out.count("\nSPAS") == 1
    same_tree(tree, root / "t")
    assert os.listdir(root) == ["t"]
