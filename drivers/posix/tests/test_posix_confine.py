import os

import pytest
from transfercore_posix.confine import PathMapper

from transfercore.errors import LocationError, PathEscapesRoot


@pytest.fixture
def root(tmp_path):
    (tmp_path / "srv" / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    return tmp_path


def test_without_root_paths_are_local(root):
    m = PathMapper.create(None)
    assert m.local("/a/b/../c") == "/a/c"
    with pytest.raises(LocationError):
        m.local("relative/path")


def test_paths_are_relative_to_the_root(root):
    m = PathMapper.create(str(root / "srv"))
    real = os.path.realpath(root / "srv")
    assert m.local("/sub/f") == os.path.join(real, "sub", "f")
    assert m.local("/") == real
    assert m.url_path(m.local("/sub/f")) == "/sub/f"


@pytest.mark.parametrize("path", ["/../outside/f", "/sub/../../outside", "/sub/..", "/.."])
def test_dotdot_is_refused(root, path):
    with pytest.raises(PathEscapesRoot, match=r"'\.\.'"):
        PathMapper.create(str(root / "srv")).local(path)


def test_symlinked_directory_escaping_is_refused(root):
    os.symlink(root / "outside", root / "srv" / "out")
    with pytest.raises(PathEscapesRoot, match="symbolic link"):
        PathMapper.create(str(root / "srv")).local("/out/f")


def test_symlinked_file_escaping_is_refused(root):
    (root / "outside" / "secret").write_text("x")
    os.symlink(root / "outside" / "secret", root / "srv" / "link")
    with pytest.raises(PathEscapesRoot):
        PathMapper.create(str(root / "srv")).local("/link")


def test_symlinks_inside_the_root_are_allowed(root):
    os.symlink(root / "srv" / "sub", root / "srv" / "alias")
    m = PathMapper.create(str(root / "srv"))
    assert m.local("/alias/f") == os.path.join(os.path.realpath(root / "srv" / "sub"), "f")


def test_bad_roots_are_refused(root):
    with pytest.raises(LocationError, match="absolute"):
        PathMapper.create("relative")
    with pytest.raises(LocationError, match="not an existing directory"):
        PathMapper.create(str(root / "missing"))


def test_nul_and_empty_paths_are_refused(root):
    m = PathMapper.create(str(root / "srv"))
    with pytest.raises(LocationError):
        m.local("")
    with pytest.raises(LocationError):
        m.local("/a\x00b")


def test_a_directory_swapped_for_a_link_by_another_process_is_seen_at_once(root):
    # no resolved parent is kept between calls: another server process on the same root (or a
    # local user) may have made the link a moment ago
    m = PathMapper.create(str(root / "srv"))
    m.local("/sub/f")
    os.rmdir(root / "srv" / "sub")
    os.symlink(root / "outside", root / "srv" / "sub")
    with pytest.raises(PathEscapesRoot, match="symbolic link"):
        m.local("/sub/f")


def test_a_link_made_through_the_driver_is_seen_at_once(root):
    from transfercore_posix.driver import PosixDriver

    d = PosixDriver(options={"root": str(root / "srv")})
    d.local_path("/sub/f")
    d.rmdir("/sub")
    d.symlink("/sub", str(root / "outside"))
    with pytest.raises(PathEscapesRoot, match="symbolic link"):
        d.local_path("/sub/f")


def test_paths_are_resolved_from_the_root_down_and_agree_with_realpath(root, monkeypatch):
    os.makedirs(root / "a" / "b")
    os.symlink(root / "a", root / "via")
    os.symlink("b", root / "a" / "rel")
    m = PathMapper.create(str(root))
    looked_at = []
    real_lstat = os.lstat

    def lstat(path, *args, **kwargs):
        looked_at.append(str(path))
        return real_lstat(path, *args, **kwargs)

    for path in ("/a/b/f", "/via/b/f", "/a/rel/f", "/via/rel/new/f", "/missing/x/f", "/f"):
        expected = os.path.join(os.path.realpath(os.path.join(m.root, *path.split("/")[1:-1])), path.split("/")[-1])
        looked_at.clear()
        monkeypatch.setattr(os, "lstat", lstat)
        try:
            got = m.local(path)
        finally:
            monkeypatch.setattr(os, "lstat", real_lstat)
        assert got == expected, path
        if "via" not in path and "rel" not in path:
            # Without a link on the way the root's own ancestors are not looked at
            # again (it was resolved once); a link is resolved as realpath does.
            assert looked_at and not [p for p in looked_at if not p.startswith(m.root + "/")], (path, looked_at)
