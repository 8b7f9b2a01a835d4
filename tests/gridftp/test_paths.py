import pytest

from transfercore.errors import PathEscapesRoot
from transfercore.gridftp.paths import parent, resolve


@pytest.mark.parametrize(
    "cwd,arg,expected",
    [
        ("/", "a/b", "/a/b"),
        ("/a", "b", "/a/b"),
        ("/a", "/x//y/./z/", "/x/y/z"),
        ("/a/b", "..", "/a"),
        ("/a", "", "/a"),
        ("/", "a b/c", "/a b/c"),
    ],
)
def test_resolve(cwd, arg, expected):
    assert resolve(cwd, arg) == expected


@pytest.mark.parametrize("arg", ["..", "/../etc/passwd", "a/../../b", "x\x00y", "a\nb", "a" * 5000])
def test_resolve_refuses_escape(arg):
    with pytest.raises(PathEscapesRoot):
        resolve("/", arg)


def test_parent():
    assert parent("/a/b") == "/a"
    assert parent("/a") == "/"
