import json
import os
import subprocess
import sys


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "transfercore", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_drivers_lists_third_party_and_broken_drivers_and_exits_zero(third_party):
    env = dict(os.environ, PYTHONPATH=str(third_party))
    text = run_cli("drivers", env=env)
    assert text.returncode == 0, text.stderr
    assert "third  (thirdparty-drivers 1.2.3)" in text.stdout
    assert "restart=none" in text.stdout
    assert "brokenone  [BROKEN]" in text.stdout
    listing = run_cli("drivers", "--json", env=env)
    assert listing.returncode == 0
    by_name = {d["name"]: d for d in json.loads(listing.stdout)}
    assert by_name["brokenone"]["broken"] is True
    assert by_name["third"]["capabilities"]["max_writers"] == 2


def test_the_shipped_reference_drivers_are_listed():
    listing = run_cli("drivers", "--json")
    names = {d["name"]: d for d in json.loads(listing.stdout)}
    assert names["posix"]["capabilities"]["restart"] == "ranges"
    assert names["posix"]["capabilities"]["atomic_publish"] is True
    assert names["mock"]["broken"] is False
