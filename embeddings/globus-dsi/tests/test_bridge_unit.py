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
