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
