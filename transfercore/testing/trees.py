"""Reproducible source trees for tree-copy tests and benchmarks.

Files of random sizes (a share of them empty) spread over nested
directories, with empty directories, symbolic links (one pointing out of
the tree, which a copy must keep as a link and never follow), varied
permissions and past modification times.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import attrs


@attrs.frozen
class TreeSpec:
    files: int = 1000
    #: Most files are between 1 B and this size (log-uniform); a tenth are empty.
    max_size: int = 256 * 1024
    #: This many extra files of ``large_size`` bytes each, in ``big/``.
    large_files: int = 0
    large_size: int = 3 * 1024 * 1024
    files_per_dir: int = 60
    empty_dirs: int = 3
    seed: int = 1
    #: "log": log-uniform sizes (many small files, as in real trees); "uniform": 0 to max_size.
    distribution: str = "log"


def _size(rng: random.Random, spec: TreeSpec) -> int:
    if spec.distribution == "uniform":
        return rng.randint(0, spec.max_size)
    if rng.random() < 0.1:
        return 0
    return int(2 ** rng.uniform(0, max(1.0, spec.max_size.bit_length() - 1)))


def make_tree(root: str | os.PathLike[str], spec: TreeSpec) -> tuple[int, int]:
    """Create the tree under ``root`` (which must not exist); return (files, bytes)."""
    rng = random.Random(spec.seed)
    base = Path(root)
    base.mkdir(parents=True)
    total = 0
    chunk = rng.randbytes(1 << 20)
    dirs: list[Path] = [base]
    count = 0
    while count < spec.files:
        parent = rng.choice(dirs[-8:])
        d = parent / f"d{len(dirs):04d}"
        d.mkdir()
        dirs.append(d)
        for _ in range(min(spec.files_per_dir, spec.files - count)):
            size = _size(rng, spec)
            start = rng.randrange(0, len(chunk))
            data = (chunk[start:] + chunk[:start]) * (size // len(chunk) + 1)
            path = d / f"f{count:06d}.dat"
            path.write_bytes(data[:size] if size else b"")
            os.chmod(path, rng.choice((0o644, 0o600, 0o640, 0o755)))
            t = rng.randrange(1_500_000_000, 1_700_000_000) * 10**9 + rng.randrange(10**9)
            os.utime(path, ns=(t, t))
            total += size
            count += 1
    if spec.large_files:
        big = base / "big"
        big.mkdir()
        for i in range(spec.large_files):
            (big / f"large{i}.bin").write_bytes(rng.randbytes(spec.large_size))
            total += spec.large_size
            count += 1
    for i in range(spec.empty_dirs):
        (rng.choice(dirs) / f"empty{i}").mkdir()
    os.symlink(os.path.relpath(dirs[-1], dirs[1]) if len(dirs) > 2 else ".", dirs[1] / "link-inside")
    os.symlink("../../../../../../../../../../etc", base / "link-outside")
    for d in dirs[1:]:
        t = rng.randrange(1_500_000_000, 1_700_000_000) * 10**9
        os.utime(d, ns=(t, t))
    return count, total


def published(src: Path, dst: Path) -> tuple[set[str], set[str]]:
    """(source files under their final names at ``dst``, source files missing there).

    Fails on any final-name file that differs from its source: after a crash, a
    name may be missing, never wrong.  Symbolic links are compared by target and
    counted in neither set.
    """
    present: set[str] = set()
    missing: set[str] = set()
    for dirpath, _dirs, files in os.walk(src):
        for name in files:
            s = Path(dirpath) / name
            rel = str(s.relative_to(src))
            d = dst / rel
            if s.is_symlink():
                if d.is_symlink():
                    assert os.readlink(d) == os.readlink(s), f"link {rel} differs"
                continue
            if d.exists():
                assert d.read_bytes() == s.read_bytes(), f"{rel} is under its final name but differs from its source"
                present.add(rel)
            else:
                missing.add(rel)
    return present, missing
