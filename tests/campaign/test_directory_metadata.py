"""A tree copy gives its directories their permissions and times in one
durable step, and reports a directory it could not finish on its own."""

from __future__ import annotations

import os

from transfercore_posix.driver import PosixDriver

from transfercore.campaign.runner import TreeCopy, TreeOptions
from transfercore.campaign.store import CampaignStore
from transfercore.errors import StorageError


def _tree(src, dirs):
    for i in range(dirs):
        d = src / f"d{i:03d}" / "sub"
        d.mkdir(parents=True)
        (d / "f").write_bytes(b"x" * i)
    for i, d in enumerate(sorted(p for p in src.rglob("*") if p.is_dir())):
        os.chmod(d, 0o750 if i % 2 else 0o755)
        os.utime(d, ns=(10**18 + i, 10**18 + i))
    os.utime(src, ns=(10**18 - 1, 10**18 - 1))


def test_every_directory_gets_its_attributes_in_one_call(tmp_path, monkeypatch):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    _tree(src, 40)
    calls = []
    real = PosixDriver.set_metadata_many

    def counting(self, changes):
        calls.append(len(changes))
        return real(self, changes)

    def one_by_one(self, path, **kw):
        raise AssertionError(f"set_metadata({path}) called for a tree's directory")

    monkeypatch.setattr(PosixDriver, "set_metadata_many", counting)
    monkeypatch.setattr(PosixDriver, "set_metadata", one_by_one)
    with CampaignStore(tmp_path / "journal.db") as store:
        result = TreeCopy(str(src), str(dst), TreeOptions(files=2), store).run()
    assert result.ok and not result.failed
    assert calls == [81]  # 80 directories and the root, together
    for a in [src, *(p for p in src.rglob("*") if p.is_dir())]:
        b = dst / a.relative_to(src)
        sa, sb = os.stat(a), os.stat(b)
        assert (sb.st_mode & 0o7777, sb.st_mtime_ns) == (sa.st_mode & 0o7777, sa.st_mtime_ns), b


def test_a_directory_the_storage_could_not_finish_is_a_failure_of_its_own(tmp_path, monkeypatch):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    _tree(src, 3)
    real = PosixDriver.set_metadata_many

    def one_fails(self, changes):
        results = real(self, changes)
        return [StorageError(f"cannot sync {c.path}: input/output error") if c.path.endswith("d001") else r
                for c, r in zip(changes, results, strict=True)]

    monkeypatch.setattr(PosixDriver, "set_metadata_many", one_fails)
    with CampaignStore(tmp_path / "journal.db") as store:
        result = TreeCopy(str(src), str(dst), TreeOptions(files=2), store).run()
    assert [rel for rel, _ in result.failed] == ["d001"]
    assert "input/output error" in result.failed[0][1]
