"""rsync's everyday options on tree copies: --delete, hard links, extended
attributes, owners (the real CLI, real files)."""

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


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_delete_removes_exactly_what_the_source_lacks(tmp_path):
    src, dst, journal = tmp_path / "src", tmp_path / "dst", tmp_path / "j.db"
    (src / "keep" / "sub").mkdir(parents=True)
    (src / "keep" / "sub" / "f").write_text("f")
    (src / "keep" / "g").write_text("g")
    (src / "top").write_text("top")
    (src / "a-fifo-name").write_text("a file here")
    code, _, err = copy(src, dst, journal)
    assert code == 0, err
    # gone from the source since: a file, a whole directory, a link
    (src / "keep" / "g").unlink()
    (dst / "keep" / "extra").mkdir()
    (dst / "keep" / "extra" / "deep").write_text("x")
    (dst / "stray-link").symlink_to("nowhere")
    (dst / "keep" / "sub" / "stray").write_text("stray")
    (src / "a-fifo-name").unlink()
    os.mkfifo(src / "a-fifo-name")  # skipped as expected: its namesake at the destination stays
    code, events, err = copy(src, dst, journal, "--delete", "--skip-specials")
    assert code == 0, err
    deleted = sorted(e["path"] for e in events if e["event"] == "deleted")
    assert deleted == ["keep/extra", "keep/extra/deep", "keep/g", "keep/sub/stray", "stray-link"]
    assert events[-1]["deleted"] == 5
    assert tree(dst) == ["a-fifo-name", "keep", "keep/sub", "keep/sub/f", "top"]
    assert (dst / "a-fifo-name").read_text() == "a file here"


def test_delete_does_nothing_when_the_copy_failed(tmp_path):
    src, dst, journal = tmp_path / "src", tmp_path / "dst", tmp_path / "j.db"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_text("f")
    code, _, err = copy(src, dst, journal)
    assert code == 0, err
    (dst / "extra").write_text("not in the source")
    (src / "new").write_text("new")
    (dst / "new").mkdir()
    (dst / "new" / "blocker").write_text("a directory in the way makes the copy fail")
    code, events, err = copy(src, dst, journal, "--delete")
    assert code == 1 and "new" in err
    assert not [e for e in events if e["event"] == "deleted"] and events[-1]["deleted"] == 0
    assert (dst / "extra").exists()
    assert any(e["event"] == "skipped" and "--delete not done" in e["reason"] for e in events)
    # and with a FIFO skipped without --skip-specials: not a full success either
    (dst / "new" / "blocker").unlink()
    (dst / "new").rmdir()
    os.mkfifo(src / "pipe")
    code, events, err = copy(src, dst, journal, "--delete")
    assert code == 1 and (dst / "extra").exists()
    code, events, err = copy(src, dst, journal, "--delete", "--skip-specials")
    assert code == 0 and not (dst / "extra").exists()


def test_delete_is_refused_with_a_manifest(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "list").write_text("")
    code, _, err = copy(tmp_path / "src", tmp_path / "dst", tmp_path / "j.db", "--delete", "--files-from",
                        tmp_path / "list")
    assert code == 2 and "--delete cannot be combined with --files-from" in err


def test_xattrs_are_kept_with_the_option_only(tmp_path):
    src, journal = tmp_path / "src", tmp_path / "j.db"
    (src / "d").mkdir(parents=True)
    f, big = src / "d" / "f", src / "big"
    f.write_text("data")
    big.write_bytes(os.urandom(200_000))
    for p in (f, big, src / "d"):
        os.setxattr(p, "user.origin", b"lab-7")
    (src / "link").symlink_to("d/f")
    plain = tmp_path / "plain"
    code, _, err = copy(src, plain, journal)
    assert code == 0, err
    assert os.listxattr(plain / "d" / "f") == [] and os.listxattr(plain / "d") == []
    kept = tmp_path / "kept"
    code, _, err = copy(src, kept, journal, "--xattrs", "--whole-file-max", "64K")
    assert code == 0, err
    for rel in ("d/f", "big", "d"):
        assert os.getxattr(kept / rel, "user.origin") == b"lab-7", rel
    # an attribute changed at the destination is put back by the rerun
    os.setxattr(kept / "d" / "f", "user.origin", b"tampered")
    os.setxattr(kept / "d" / "f", "user.extra", b"x")
    code, events, err = copy(src, kept, journal, "--xattrs", "--whole-file-max", "64K")
    assert code == 0, err
    assert os.getxattr(kept / "d" / "f", "user.origin") == b"lab-7"
    assert os.listxattr(kept / "d" / "f") == ["user.origin"]
    assert events[-1]["repaired"] == 1 and events[-1]["copied"] == 0  # proven equal, attributes set again


def test_owners_are_kept_with_the_option_only(tmp_path):
    assert os.geteuid() == 0, "setting owners needs root: the tests run as root, as CI does"
    src, journal = tmp_path / "src", tmp_path / "j.db"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_text("data")
    (src / "big").write_bytes(os.urandom(200_000))
    (src / "setgid").write_text("s")
    (src / "link").symlink_to("d/f")
    for rel in ("d/f", "big", "d", "setgid"):
        os.chown(src / rel, 1234, 4321)
    os.chmod(src / "setgid", 0o2755)
    os.chown(src / "link", 1234, 4321, follow_symlinks=False)
    code, _, err = copy(src, tmp_path / "plain", journal)
    assert code == 0, err
    assert os.lstat(tmp_path / "plain" / "d" / "f").st_uid == os.geteuid()
    kept = tmp_path / "kept"
    code, _, err = copy(src, kept, journal, "--owners", "--whole-file-max", "64K")
    assert code == 0, err
    for rel in ("d/f", "big", "d", "link", "setgid"):
        st = os.lstat(kept / rel)
        assert (st.st_uid, st.st_gid) == (1234, 4321), rel
    assert os.stat(kept / "setgid").st_mode & 0o7777 == 0o2755  # chown cleared it; it was put back


def test_hard_links_are_kept_with_the_option_and_repaired(tmp_path):
    src, journal = tmp_path / "src", tmp_path / "j.db"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    (src / "a" / "f").write_bytes(b"shared bytes")
    os.link(src / "a" / "f", src / "b" / "g")
    os.link(src / "a" / "f", src / "h")
    (src / "single").write_text("one name")
    code, _, err = copy(src, tmp_path / "plain", journal)
    assert code == 0, err
    assert os.lstat(tmp_path / "plain" / "h").st_nlink == 1  # without the option: separate files
    dst = tmp_path / "dst"
    code, events, err = copy(src, dst, journal, "-H")
    assert code == 0, err
    inodes = {os.lstat(dst / rel).st_ino for rel in ("a/f", "b/g", "h")}
    assert len(inodes) == 1 and os.lstat(dst / "h").st_nlink == 3
    assert (dst / "b" / "g").read_bytes() == b"shared bytes"
    assert events[-1]["copied"] == 2  # the file once, and "single"
    # intact: nothing to do
    code, events, err = copy(src, dst, journal, "-H")
    assert code == 0 and events[-1]["repaired"] == 0 and events[-1]["copied"] == 0, err
    # one name removed, the first name replaced: all linked again to one object
    (dst / "b" / "g").unlink()
    (dst / "a" / "f").unlink()
    (dst / "a" / "f").write_bytes(b"other bytes!")
    code, events, err = copy(src, dst, journal, "-H")
    assert code == 0, err
    inodes = {os.lstat(dst / rel).st_ino for rel in ("a/f", "b/g", "h")}
    assert len(inodes) == 1 and (dst / "h").read_bytes() == b"shared bytes"
    code, events, err = copy(src, dst, journal, "-H")
    assert code == 0 and events[-1]["repaired"] == 0 and events[-1]["copied"] == 0, err
