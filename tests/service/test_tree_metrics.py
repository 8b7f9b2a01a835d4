"""``copy -r --metrics-port``: a campaign's figures scraped while it runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from transfercore.testing.loopback import free_port


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "campaign"))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_tree_copy_serves_its_progress_while_it_runs(tmp_path):
    src = tmp_path / "tree"
    src.mkdir()
    sizes = [100_000 + i for i in range(12)]
    for i, size in enumerate(sizes):
        (src / f"f{i:02}").write_bytes(os.urandom(size))
    port = free_port()
    # a slowed destination (every write sleeps), so the run lasts long enough to be watched
    dst = f"mock://t/out?dir={tmp_path / 'store'}&slow=0.1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "transfercore", "copy", "-r", "--quiet", "--files", "2", "--metrics-port",
         str(port), str(src), dst],
        env=os.environ | {"XDG_STATE_HOME": str(tmp_path / "state")}, stderr=subprocess.PIPE, text=True)
    seen: list[dict] = []
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            samples = scrape(port)
            if samples is not None:
                seen.append(samples)
            time.sleep(0.05)
        assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
        proc.wait(10)
    running = [s for s in seen if s.get(("transfercore_tree_files", (("state", "total"),))) == len(sizes)]
    assert running, "never scraped after tree-start"
    done = [s[("transfercore_tree_files", (("state", "done"),))] for s in running]
    assert done == sorted(done) and 0 <= done[0] < len(sizes)  # it grew while the copy ran
    written = [s[("transfercore_tree_bytes_written_total", ())] for s in running]
    assert written == sorted(written) and written[0] < written[-1] <= sum(sizes)
    assert running[0][("transfercore_tree_bytes", (("state", "total"),))] == sum(sizes)
