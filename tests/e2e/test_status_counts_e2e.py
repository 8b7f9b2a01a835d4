"""``status`` after a ``kill -9`` of a tree copy counts what is published.

The runner records outcomes in batches, so a killed run leaves files that
were published but not recorded; the counts must still match the files
under their final names at the destination.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from transfercore.testing.trees import TreeSpec, make_tree

TIMEOUT = 120
SPEC = TreeSpec(files=2000, max_size=4 * 1024, large_files=0, large_size=0, seed=21)


def published_files(src, dst):
    out = []
    for dirpath, _dirs, files in os.walk(src):
        for name in files:
            s = Path(dirpath) / name
            d = dst / s.relative_to(src)
            if not s.is_symlink() and d.exists() and not d.is_symlink() and d.read_bytes() == s.read_bytes():
                out.append(d)
    return out


def test_counts_after_kill_9_match_the_published_files(tmp_path):
    src, dst, journal = tmp_path / "src", tmp_path / "dst", tmp_path / "j.sqlite"
    make_tree(src, SPEC)
    proc = subprocess.Popen(
        [sys.executable, "-m", "transfercore", "copy", "-r", str(src), str(dst), "--journal", str(journal),
         "--json", "--files", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    seen = 0
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line)
            assert event["event"] != "tree-done", "the copy finished before the kill point"
            seen += event["event"] == "file-done"
            if seen >= 50:
                break
        # Reading no more: the runner blocks on its full output pipe while the
        # workers go on publishing what was handed out, unrecorded.
        deadline = time.monotonic() + 20
        last, stable_since = -1, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - stable_since < 1.0:
            now = len(published_files(src, dst))
            if now != last:
                last, stable_since = now, time.monotonic()
            time.sleep(0.05)  # polling the destination (bounded by the deadline), not synchronising
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=TIMEOUT)
    published = len(published_files(src, dst))
    status = subprocess.run([sys.executable, "-m", "transfercore", "status", "--json", "--journal", str(journal)],
                            capture_output=True, text=True, timeout=TIMEOUT)
    (tree,) = json.loads(status.stdout)["trees"]
    assert tree["state"] == "interrupted" and tree["id"] == "t1"
    assert tree["counts"]["files"].get("complete", 0) == published > 50
    text = subprocess.run([sys.executable, "-m", "transfercore", "status", "--journal", str(journal)],
                          capture_output=True, text=True, timeout=TIMEOUT).stdout
    assert f"{published} of {tree['counts']['total_files']} files complete" in text
