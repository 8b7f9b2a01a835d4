"""Which event loop the servers run on (transfercore.eventloop)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from transfercore.errors import OptionError
from transfercore.eventloop import loop_factory, loop_name, run


async def _name() -> str:
    await asyncio.sleep(0)
    return loop_name()


def test_auto_runs_on_uvloop_where_it_is_installed():
    import uvloop  # noqa: F401 - a dependency on this platform: missing, the install is broken
    assert run(_name()) == "uvloop"
    assert run(_name(), "uvloop") == "uvloop"


def test_asyncio_asked_for_runs_on_asyncios_own_loop():
    assert loop_factory("asyncio") is None
    assert run(_name(), "asyncio") == "asyncio"


def test_without_uvloop_auto_falls_back_and_uvloop_asked_for_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    assert loop_factory("auto") is None
    assert run(_name()) == "asyncio"
    with pytest.raises(OptionError) as err:
        loop_factory("uvloop")
    assert "not installed" in str(err.value) and "--event-loop asyncio" in str(err.value)


def test_an_unknown_loop_is_refused_with_the_choices():
    with pytest.raises(OptionError, match="auto, uvloop, asyncio"):
        loop_factory("trio")


def test_run_returns_the_result_and_closes_its_loop():
    loops: list[asyncio.AbstractEventLoop] = []

    async def main() -> int:
        loops.append(asyncio.get_running_loop())
        return 42

    for choice in ("auto", "asyncio"):
        assert run(main(), choice) == 42
    assert all(loop.is_closed() for loop in loops)
