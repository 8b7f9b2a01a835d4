"""The example configuration file and systemd unit of docs/operating.md are usable as shipped."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from transfercore.cli import build_parser
from transfercore.cli.serve_cmd import CHECKS
from transfercore.service.config import load, options
from transfercore.testing.gsi_pki import GridPKI

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "service"
TOML = EXAMPLES / "serve.toml"
UNIT = EXAMPLES / "transfercore-serve.service"
GLOBUS_UNIT = EXAMPLES / "transfercore-globus.service"


def test_the_example_configuration_has_only_known_keys_of_the_right_types():
    file = load(str(TOML), options(build_parser().parse_args(["serve"])), CHECKS)
    assert file.values["gsi"] is True and file.values["metrics_port"] == 9811
    assert {"transfer_log", "session_log", "root", "passive_ports"} <= set(file.values)


def test_the_example_configuration_passes_check_config_with_real_paths(tmp_path):
    """The same file with its site paths pointed at a test grid and scratch directories."""
    pki = GridPKI.make(tmp_path / "grid")
    text = TOML.read_text()
    for site, here in {
        "/srv/gridftp": tmp_path / "srv",
        "/etc/grid-security/hostcert.pem": pki.host_cert,
        "/etc/grid-security/hostkey.pem": pki.host_key,
        "/etc/grid-security/certificates": pki.ca_dir,
        "/etc/grid-security/grid-mapfile": pki.gridmap,
        "/var/lib/transfercore": tmp_path / "state",
        "/var/log/transfercore": tmp_path / "log",
    }.items():
        assert site in text, site
        text = text.replace(site, str(here))
    for d in ("srv", "state/spool", "log"):
        (tmp_path / d).mkdir(parents=True)
    cfg = tmp_path / "serve.toml"
    cfg.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "transfercore", "serve", "--check-config", str(cfg)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{cfg}: ok"


def test_the_unit_runs_serve_with_the_usual_hardening():
    unit = UNIT.read_text()
    for line in ("User=transfercore", "ProtectSystem=strict", "PrivateTmp=yes", "StateDirectory=transfercore",
                 "NoNewPrivileges=yes", "ExecReload=/bin/kill -HUP $MAINPID",
                 "ExecStart=/opt/transfercore/.venv/bin/transfercore serve --config /etc/transfercore/serve.toml"):
        assert f"\n{line}\n" in unit, line


def test_the_globus_unit_starts_the_server_with_warm_sessions_and_reloads_it():
    unit = GLOBUS_UNIT.read_text()
    start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = start.removeprefix("ExecStart=").split()
    assert argv[0] == "/opt/transfercore/.venv/bin/transfercore"
    args = build_parser().parse_args(argv[1:])
    # what the command line makes of it: the pool, the URL, the server's own options after it
    assert args.warm == 4 and args.url == "posix:///srv/gridftp"
    assert args.server_args == ["-c", "/etc/gridftp.conf", "-p", "2811"]
    assert "\nExecReload=/bin/kill -HUP $MAINPID\n" in unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
@pytest.mark.parametrize("example", [UNIT, GLOBUS_UNIT], ids=lambda p: p.name)
def test_systemd_analyze_verifies_the_unit(tmp_path, example):
    # verify checks that the programs exist: point it at this environment's transfercore
    here = Path(sys.executable).parent / "transfercore"
    assert here.exists()
    unit = tmp_path / example.name
    unit.write_text(example.read_text().replace("/opt/transfercore/.venv/bin/transfercore", str(here)))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Failed to parse" not in proc.stderr and "Unknown key" not in proc.stderr, proc.stderr
