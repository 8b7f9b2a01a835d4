import os

import pytest

from transfercore.campaign import Kind, manifest_entries, walk
from transfercore.errors import LocationError
from transfercore.registry import open_location


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "src"
    (root / "a" / "b").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a" / "x").write_bytes(b"x" * 10)
    (root / "a" / "b" / "y").write_bytes(b"")
    os.symlink("../..", root / "a" / "up")  # points out of the tree: must not be followed
    os.mkfifo(root / "fifo")
    return root


def test_walk_streams_entries_parents_first_without_following_links(tree):
    driver = open_location(str(tree)).driver
    skipped = []
    entries = list(walk(driver, str(tree), lambda rel, why: skipped.append(rel)))
    kinds = {e.rel: e.kind for e in entries}
    assert kinds == {"a": Kind.DIR, "empty": Kind.DIR, "a/b": Kind.DIR, "a/x": Kind.FILE,
                     "a/b/y": Kind.FILE, "a/up": Kind.LINK}
    assert skipped == ["fifo"]
    order = [e.rel for e in entries]
    assert order.index("a") < order.index("a/b") < order.index("a/b/y")
    link = next(e for e in entries if e.kind is Kind.LINK)
    assert link.link == "../.."
    assert next(e for e in entries if e.rel == "a/x").size == 10


def test_walk_is_lazy(tree):
    driver = open_location(str(tree)).driver
    scanned = []
    real = driver.scan

    def scan(path):
        scanned.append(path)
        return real(path)

    driver.scan = scan
    it = walk(driver, str(tree))
    next(it)
    assert scanned == [str(tree)]  # one listing open, nothing below it read yet
    rest = list(it)
    assert len(scanned) == 4 and len(rest) == 5


def test_manifest_adds_parent_directories_and_refuses_escapes(tree):
    driver = open_location(str(tree)).driver
    got = [(e.rel, e.kind) for e in manifest_entries(driver, str(tree), ["a/b/y\n", "a/x\n", "\n"])]
    assert got == [("a", Kind.DIR), ("a/b", Kind.DIR), ("a/b/y", Kind.FILE), ("a/x", Kind.FILE)]
    with pytest.raises(LocationError, match="leaves the source tree"):
        list(manifest_entries(driver, str(tree), ["../etc/passwd"]))
    with pytest.raises(LocationError, match="absolute"):
        list(manifest_entries(driver, str(tree), ["/etc/passwd"]))
