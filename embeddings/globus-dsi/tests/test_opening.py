from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from transfercore_globus_dsi.opening import load_class, open_driver, resolve

from transfercore.errors import DriverLoadError, DriverNotFound, OptionError
from transfercore.location import parse_location


def test_resolve_names_the_registrys_class():
    assert resolve("posix") == "posix=transfercore_posix.driver:PosixDriver"
    with pytest.raises(DriverNotFound):
        resolve("nodriver")


def test_open_from_the_resolved_class(tmp_path):
    driver = open_driver(parse_location(f"posix://{tmp_path}?max_writers=3"), "transfercore_posix.driver:PosixDriver")
    assert type(driver).__name__ == "PosixDriver" and driver.settings["max_writers"] == 3


def test_without_entry_point_the_registry_finds_the_driver(tmp_path):
    # options written before entry_point existed, or by hand
    assert open_driver(parse_location(f"posix://{tmp_path}"), None).name == "posix"
    with pytest.raises(DriverNotFound):
        open_driver(parse_location("nodriver:///x"), None)


def test_bad_option_is_refused_as_by_the_registry(tmp_path):
    with pytest.raises(OptionError):
        open_driver(parse_location(f"posix://{tmp_path}?colour=blue"), "transfercore_posix.driver:PosixDriver")


def test_not_a_driver_class_is_refused():
    with pytest.raises(DriverLoadError, match="not a transfercore.contract.Driver"):
        load_class("transfercore.ranges:RangeSet", "posix")
    with pytest.raises(DriverLoadError, match="ModuleNotFoundError"):
        load_class("no_such_module_here:Driver", "posix")


def test_stale_entry_point_falls_back_to_the_registry(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="transfercore.globus_dsi"):
        driver = open_driver(parse_location(f"posix://{tmp_path}"), "no_such_module_here:PosixDriver")
    assert driver.name == "posix"
    assert "asking the registry" in caplog.text


def test_a_session_opens_its_driver_without_the_registry(tmp_path):
    # what a session imports: the bridge and the driver, not stevedore nor importlib.metadata
    code = (
        "import sys\n"
        "from transfercore_globus_dsi import bridge\n"
        "from transfercore_globus_dsi.config import parse_config\n"
        f"c = parse_config('posix://{tmp_path} entry_point=posix=transfercore_posix.driver:PosixDriver')\n"
        "bridge.open_driver(c.location, c.entry_point)\n"
        # the reply to the stat the server makes before every STOR of a new file
        "from transfercore_globus_dsi.replies import error_reply\n"
        "from transfercore.errors import NotFound\n"
        "error_reply(NotFound('new file'))\n"
        "print(sorted(m for m in ('stevedore', 'importlib.metadata', 'transfercore.registry', 'crc32c', "
        "'transfercore.gridftp') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
