"""The example third-party driver, installed from its own directory, is found
and passes the conformance kit, as the driver author guide promises."""

import json
import subprocess
import sys


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "transfercore", *args], capture_output=True, text=True, timeout=300
    )


def test_example_driver_is_listed_with_its_declared_capabilities():
    listing = run_cli("drivers", "--json")
    assert listing.returncode == 0, listing.stderr
    drivers = {d["name"]: d for d in json.loads(listing.stdout)}
    append = drivers["append"]
    assert append["distribution"] == "transfercore-append"
    assert append["broken"] is False
    assert append["capabilities"]["restart"] == "prefix"
    assert append["capabilities"]["ordered_writes"] is True


def test_example_driver_passes_the_conformance_kit(tmp_path):
    result = run_cli("conformance", f"append://{tmp_path}", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    outcomes = {c["name"]: c["outcome"] for c in report["clauses"]}
    assert outcomes["durable"] == "pass"
    assert outcomes["resumable"] == "pass"
    assert "fail" not in outcomes.values()
