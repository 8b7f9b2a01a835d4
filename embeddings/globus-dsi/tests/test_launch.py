from __future__ import annotations

import os
import subprocess
import sys

import pytest
import transfercore_globus_dsi as dsi
from transfercore_globus_dsi import launch

from transfercore.errors import OptionError


def test_module_is_built_for_this_environment():
    assert os.path.exists(dsi.module_path()), "the DSI module was not built"
    info = dsi.build_info()
    # the module embeds the interpreter of the environment it was installed into
    assert os.path.realpath(info["executable"]) == os.path.realpath(sys.executable)
    assert info["version"] == sys.version.split()[0]


def test_launch_argv_and_environment():
    plan = launch.server_launch(
        "posix:///data", ["-p", "2811"], log="/tmp/x.log", environ={"LD_LIBRARY_PATH": "/opt/lib"},
        server="/usr/sbin/globus-gridftp-server",
    )
    # the driver resolved through the registry once, here: sessions import it directly
    assert plan.argv == (
        "/usr/sbin/globus-gridftp-server", "-p", "2811", "-dsi",
        "transfercore:posix:///data log=/tmp/x.log entry_point=posix=transfercore_posix.driver:PosixDriver",
    )
    assert plan.env["LD_LIBRARY_PATH"] == dsi.module_dir() + ":/opt/lib"
    assert plan.env["TRANSFERCORE_DSI_LOG"] == "/tmp/x.log"
    # what a warm session process imports ahead (transfercore_globus_dsi.warm)
    assert plan.imports == ("transfercore_posix.driver",)


def test_given_entry_point_is_kept():
    text = launch.dsi_options("mock:///x", extra=["entry_point=mock=transfercore_mock.driver:MockDriver"])
    assert text.count("entry_point=") == 1


def test_bad_dsi_option_is_refused_before_starting():
    with pytest.raises(OptionError):
        launch.server_launch("posix:///data", [], dsi_extra=["bogus=1"], server="/bin/true")


def test_site_config_names_module_python_and_environment():
    text = launch.site_config("posix:///srv/data")
    assert 'load_dsi_module "transfercore:posix:///srv/data log=' in text
    assert ' entry_point=posix=transfercore_posix.driver:PosixDriver"' in text
    assert f"$LD_LIBRARY_PATH {dsi.module_dir()}" in text
    assert dsi.build_info()["executable"] in text


def test_cli_site_config():
    proc = subprocess.run(
        [sys.executable, "-m", "transfercore", "globus-server", "--site-config", "posix:///srv/data"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert 'load_dsi_module "transfercore:posix:///srv/data' in proc.stdout


def test_cli_unknown_driver_is_one_clear_error():
    proc = subprocess.run(
        [sys.executable, "-m", "transfercore", "globus-server", "nodriver:///x", "-p", "0"],
        capture_output=True, text=True, timeout=60,
    )
    from transfercore.cli.exitcodes import ExitCode

    assert proc.returncode == ExitCode.USAGE, proc.stderr  # a bad URL is a usage error
    assert proc.stderr.startswith("transfercore: error: no transfercore driver named 'nodriver'")
