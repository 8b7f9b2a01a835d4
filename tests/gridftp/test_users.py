import pytest

from transfercore.errors import OptionError
from transfercore.gridftp.users import UserDB, add_user, make_entry, parse_line


def test_add_and_check(tmp_path):
    path = tmp_path / "users"
    add_user(str(path), "alice", "s3cret")
    add_user(str(path), "bob", "other")
    text = path.read_text()
    assert "s3cret" not in text and "alice:scrypt$" in text
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    db = UserDB.load(str(path))
    assert db.check("alice", "s3cret")
    assert not db.check("alice", "wrong")
    assert not db.check("nobody", "s3cret")
    add_user(str(path), "alice", "new")
    assert UserDB.load(str(path)).check("alice", "new")


def test_salts_differ():
    assert make_entry("a", "pw").salt != make_entry("a", "pw").salt


@pytest.mark.parametrize("name", ["anonymous", "ftp", "a b", "", "x" * 65, "a:b"])
def test_bad_names(name):
    with pytest.raises(OptionError):
        make_entry(name, "pw")


@pytest.mark.parametrize(
    "line",
    [
        "alice:plain",
        "alice:scrypt$1$8$1$00$00",
        "alice:scrypt$16384$8$1$zz$00",
        "alice:scrypt$3$8$1$00$" + "00" * 32,
    ],
)
def test_bad_lines(line):
    with pytest.raises(OptionError):
        parse_line(line, "users:1")


def test_missing_file_is_empty(tmp_path):
    assert len(UserDB.load(str(tmp_path / "none"))) == 0
