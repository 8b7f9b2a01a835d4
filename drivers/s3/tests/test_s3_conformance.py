"""The conformance kit, run as a user would, against the real server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from transfercore_s3.seaweed import SeaweedS3

TRANSFERCORE = str(Path(sys.executable).parent / "transfercore")
#: The clauses that do not apply, and the declared capability that says so.
NOT_APPLICABLE = {
    "ordered-writes": "accepts writes in any order",
    "durable-power-loss": "local_path() returns None",
    "syncs": "local_path() returns None",
    "batch-power-loss": "local_path() returns None",
    "leftovers": "local_path() returns None",
    "read-back": "does not declare read_back",
    "checksums": "declares no storage checksums",
    "range-writers-union": "does not declare range_writers",
    "range-writers-claims": "does not declare range_writers",
}


def test_conformance_kit_passes(seaweed: SeaweedS3, bucket: str, s3env: dict[str, str]) -> None:
    url = f"s3://{bucket}/conformance?endpoint={seaweed.endpoint}"
    result = subprocess.run(
        [TRANSFERCORE, "conformance", url], env=s3env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    verdicts: dict[str, str] = {}
    lines = result.stdout.splitlines()
    for i, line in enumerate(lines):
        words = line.split()
        if len(words) >= 2 and words[0] in ("PASS", "FAIL", "N/A", "NOT", "OFF"):
            verdicts[words[1] if words[0] != "NOT" else words[2]] = words[0]
            if words[0] == "N/A":
                reason = lines[i + 1]
                assert NOT_APPLICABLE[words[1]] in reason, (words[1], reason)
    not_applicable = {name for name, verdict in verdicts.items() if verdict == "N/A"}
    assert not_applicable == set(NOT_APPLICABLE), verdicts
    passed = {name for name, verdict in verdicts.items() if verdict == "PASS"}
    assert passed == set(verdicts) - not_applicable and len(passed) >= 11, verdicts
