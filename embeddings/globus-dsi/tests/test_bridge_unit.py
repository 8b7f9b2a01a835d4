"""The bridge's per-call parts without the server: its entry points' imports and its log format."""

from __future__ import annotations

import importlib
import logging

import pytest
from transfercore_globus_dsi import bridge


def test_an_entry_point_imports_its_module_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from transfercore_globus_dsi.namespace import do_stat

    monkeypatch.setattr(bridge, "_entries", {})
    imported: list[str] = []
    real = importlib.import_module

    def counting(name: str, package: str | None = None):  # type: ignore[no-untyped-def]
        imported.append(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", counting)
    assert bridge._lazy("namespace", "do_stat") is do_stat
    assert bridge._lazy("namespace", "do_stat") is do_stat
    assert imported == ["transfercore_globus_dsi.namespace"]


def test_the_log_time_formatted_once_a_second_reads_as_the_standard_one() -> None:
    fmt = "%(asctime)s %(process)d %(levelname)s %(message)s"
    ours = bridge._Formatter(fmt, "%Y-%m-%dT%H:%M:%S")
    standard = logging.Formatter(fmt, "%Y-%m-%dT%H:%M:%S")
    base = 1_800_000_000.0
    lines = []
    for created in (base + 0.1, base + 0.9, base + 1.0, base + 1.5, base + 61.2, base + 0.2):
        record = logging.LogRecord("transfercore.globus_dsi", logging.INFO, __file__, 1, "upload %s", ("/a",), None)
        record.created = created
        record.msecs = (created % 1) * 1000
        lines.append(ours.format(record))
        assert lines[-1] == standard.format(record)
    assert lines[0] == lines[1] != lines[2] == lines[3] != lines[4]


class _ServerLog:
    GLOBUS_GFS_LOG_ERR = 1
    GLOBUS_GFS_LOG_WARN = 2

    def __init__(self) -> None:
        self.lines: list[tuple[int, bytes]] = []

    def tc_server_log(self, level: int, message: bytes) -> None:
        self.lines.append((level, message))


def test_the_dsi_log_takes_every_line_and_the_server_log_warnings_and_errors(monkeypatch, tmp_path):
    import os
    import re

    from transfercore_globus_dsi import glue

    server = _ServerLog()
    monkeypatch.setattr(glue, "lib", server)
    # the session's logging set-up changes these for its whole process: put them back after
    for name in ("logThreads", "logMultiprocessing", "_srcfile"):
        monkeypatch.setattr(logging, name, getattr(logging, name))
    root = logging.getLogger("transfercore")
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    path = tmp_path / "dsi.log"
    bridge._setup_logging(str(path))
    try:
        log = logging.getLogger("transfercore.globus_dsi")
        log.info("upload /a: 5 bytes")
        log.warning("careful\nthere")
        log.error("bad")
    finally:
        for handler in root.handlers:
            handler.close()
    assert server.lines == [(2, b"careful there"), (1, b"bad")]
    lines = path.read_text().splitlines()
    assert [line.split(" ", 3)[2:] for line in lines[:2]] == [["INFO", "upload /a: 5 bytes"], ["WARNING", "careful"]]
    assert all(re.match(rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d {os.getpid()} ", line) for line in (lines[0], lines[1], lines[3]))
