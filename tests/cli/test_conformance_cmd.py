"""``transfercore conformance`` through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def tc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "transfercore", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.fuse
def test_posix_passes_with_exit_zero(tmp_path):
    out = tc("conformance", f"posix://{tmp_path}")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PASS  durable-power-loss" in out.stdout
    assert "0 failed" in out.stdout


def test_honest_mock_passes():
    out = tc("conformance", "mock://cli/scratch")
    assert out.returncode == 0, out.stdout
    assert "N/A   ordered-writes" in out.stdout


@pytest.mark.parametrize(("lie", "clause"), [("early-marker", "durable"), ("wide-marker", "marker-sound"),
                                             ("forget-record", "rejects-unbacked")])
def test_lying_mock_exits_4_naming_the_clause(lie, clause):
    out = tc("conformance", f"mock://cli/scratch?lie={lie}")
    assert out.returncode == 4
    assert f"FAIL  {clause}" in out.stdout


def test_json_report_and_clause_selection():
    out = tc("conformance", "mock://cli/scratch?lie=wide-marker", "--clause", "marker-sound", "--json")
    doc = json.loads(out.stdout)
    assert [c["name"] for c in doc["clauses"]] == ["marker-sound"]
    assert doc["ok"] is False and doc["clauses"][0]["outcome"] == "fail"
    assert "never written" in doc["clauses"][0]["evidence"]


def test_no_power_loss_is_reported_as_switched_off(tmp_path):
    out = tc("conformance", f"posix://{tmp_path}", "--clause", "durable-power-loss", "--no-power-loss")
    assert out.returncode == 0
    assert "OFF   durable-power-loss" in out.stdout and "1 switched off" in out.stdout


def test_list_and_unknown_clause():
    listing = tc("conformance", "--list")  # as the guide writes it: no URL needed
    assert listing.returncode == 0 and "resumable" in listing.stdout and "syncs" in listing.stdout
    assert tc("conformance", "mock://x/y", "--list").stdout == listing.stdout
    bad = tc("conformance", "mock://x/y", "--clause", "nope")
    assert bad.returncode == 2
    assert "no conformance clause named 'nope'" in bad.stderr


def test_unknown_driver_is_a_clear_error():
    out = tc("conformance", "nosuchdriver:///tmp/x")
    assert out.returncode == 2
    assert "no transfercore driver named 'nosuchdriver'" in out.stderr


def test_a_missing_scratch_directory_is_one_message_and_exit_2(tmp_path):
    out = tc("conformance", f"posix://{tmp_path}/missing")
    assert out.returncode == 2 and out.stdout == ""
    (line,) = out.stderr.splitlines()
    assert "does not exist" in line and "Traceback" not in out.stderr


def test_a_granularity_the_kit_cannot_fill_gives_a_hint_the_driver_accepts():
    out = tc("conformance", "hpss:///scratch")
    assert out.returncode == 2
    assert "segment=16MiB" in out.stderr and "1MiB" not in out.stderr


def test_a_clause_that_cannot_run_here_is_not_run_with_its_own_exit_code(tmp_path):
    # A machine without strace: the syscall clause names what to install, and the kit does not pass.
    env = dict(os.environ, PATH=str(tmp_path))
    out = subprocess.run([sys.executable, "-m", "transfercore", "conformance", f"posix://{tmp_path}",
                          "--clause", "syncs", "--clause", "round-trip"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 5, out.stdout + out.stderr
    assert "NOT RUN  syncs" in out.stdout and "install strace" in out.stdout
    assert "PASS  round-trip" in out.stdout and "1 not run here" in out.stdout
