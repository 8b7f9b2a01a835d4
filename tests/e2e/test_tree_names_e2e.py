"""Nothing is left out silently: names that are not UTF-8 are copied byte for
byte, and every entry not copied is listed and fails the exit code."""

import json
import os
import subprocess
import sys

TIMEOUT = 120


def copy(src, dst, journal, *extra):
    proc = subprocess.run(
        [sys.executable, "-m", "transfercore", "copy", "-r", str(src), str(dst), "--journal", str(journal), "--json",
         *extra], capture_output=True, text=True, timeout=TIMEOUT)
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()], proc.stderr


def test_names_that_are_not_utf8_are_copied_byte_for_byte(tmp_path):
    src, dst = os.fsencode(tmp_path / "src"), os.fsencode(tmp_path / "dst")
    os.makedirs(src + b"/dir-\xe9t\xe9")  # latin-1, not UTF-8
    names = {b"dir-\xe9t\xe9/caf\xe9": b"latin-1 name", b"\xff\xfe-raw": b"bytes", b"ok-\xc3\xa9": b"utf-8",
             b"esc\x01ape": b"control byte", b"dir-\xe9t\xe9/big-\xff": os.urandom(300_000)}
    for name, data in names.items():
        with open(src + b"/" + name, "wb") as f:
            f.write(data)
    os.symlink(b"target-\xfe", src + b"/link-\xfd")
    code, events, err = copy(os.fsdecode(src), os.fsdecode(dst), tmp_path / "j.db", "--whole-file-max", "1M")
    assert code == 0, err
    for name, data in names.items():
        with open(dst + b"/" + name, "rb") as f:
            assert f.read() == data, name
    assert os.readlink(dst + b"/link-\xfd") == b"target-\xfe"
    assert sorted(os.listdir(dst)) == sorted(os.listdir(src))
    assert events[-1]["files"] == len(names) and events[-1]["copied"] == len(names)
    # the journal holds them too: a rerun finds everything in place
    os.unlink(dst + b"/\xff\xfe-raw")
    code, events, err = copy(os.fsdecode(src), os.fsdecode(dst), tmp_path / "j.db", "--whole-file-max", "1M")
    assert code == 0, err
    assert events[-1]["repaired"] == 1 and events[-1]["copied"] == 1
    with open(dst + b"/\xff\xfe-raw", "rb") as f:
        assert f.read() == b"bytes"


def test_a_large_file_with_such_a_name_is_refused_clearly(tmp_path):
    src = os.fsencode(tmp_path / "src")
    os.makedirs(src)
    with open(src + b"/big-\xff", "wb") as f:
        f.write(b"x" * 200_000)
    code, events, err = copy(os.fsdecode(src), str(tmp_path / "dst"), tmp_path / "j.db", "--whole-file-max", "64K")
    assert code == 1 and "not valid UTF-8" in err and "--whole-file-max" in err
    assert events[-1]["failed"] == 1


def test_special_files_are_listed_and_fail_the_exit_code_unless_expected(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "file").write_text("data")
    os.mkfifo(src / "sub" / "a-fifo")
    code, events, err = copy(src, dst, tmp_path / "j.db")
    assert code == 1
    assert "1 of the source's entries were not copied" in err and "sub/a-fifo" in err
    assert [e["path"] for e in events if e["event"] == "skipped"] == ["sub/a-fifo"]
    assert (dst / "sub" / "file").read_text() == "data"
    code, events, err = copy(src, dst, tmp_path / "j.db", "--skip-specials")
    assert code == 0, err
    assert "skipped sub/a-fifo" in err and events[-1]["skipped"] == 1


def test_one_tree_with_byte_names_hard_links_xattrs_and_a_fifo(tmp_path):
    src, dst = os.fsencode(tmp_path / "src"), os.fsencode(tmp_path / "dst")
    os.makedirs(src + b"/d\xe9")
    with open(src + b"/d\xe9/f\xff", "wb") as f:
        f.write(b"named in latin-1")
    os.link(src + b"/d\xe9/f\xff", src + b"/second-name")
    os.setxattr(src + b"/d\xe9/f\xff", "user.tag", b"kept")
    os.mkfifo(src + b"/d\xe9/pipe")
    code, events, err = copy(os.fsdecode(src), os.fsdecode(dst), tmp_path / "j.db", "-H", "--xattrs")
    assert code == 1, "a FIFO was left out: the exit code must say so"
    assert "were not copied" in err and "pipe" in err
    assert [e["path"] for e in events if e["event"] == "skipped"] == [os.fsdecode(b"d\xe9/pipe")]
    assert events[-1]["failed"] == 0
    with open(dst + b"/d\xe9/f\xff", "rb") as f:
        assert f.read() == b"named in latin-1"
    assert os.lstat(dst + b"/d\xe9/f\xff").st_ino == os.lstat(dst + b"/second-name").st_ino
    assert os.getxattr(dst + b"/d\xe9/f\xff", "user.tag") == b"kept"
    assert not os.path.exists(dst + b"/d\xe9/pipe")


def test_a_tree_deeper_than_the_system_allows_stops_with_what_to_do(tmp_path):
    # 25 levels of 200-byte names: past Linux's 4,096-byte path before the file at the bottom
    src = tmp_path / "src"
    src.mkdir()
    fd = os.open(src, os.O_RDONLY)
    try:
        for _ in range(25):
            os.mkdir("d" * 200, dir_fd=fd)
            deeper = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = deeper
        leaf = os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(leaf, b"at the bottom")
        os.close(leaf)
    finally:
        os.close(fd)
    code, events, err = copy(src, tmp_path / "dst", tmp_path / "j.db")
    assert code == 1
    assert "File name too long" in err and "4,096 a path" in err and "nearer the long path" in err
    assert not [e for e in events if e["event"] == "tree-done"]  # stopped, not reported done
