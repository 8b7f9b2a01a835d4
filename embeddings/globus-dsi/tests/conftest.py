"""Fixtures: the real Globus server with the transfercore DSI; the real one with its file storage."""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from transfercore_globus_dsi.testing import GLOBUS_MISSING, DsiServer, have_globus

from transfercore.testing.loopback import start_globus_server


@pytest.fixture(autouse=True)
def _require_globus_and_module(request: pytest.FixtureRequest) -> None:
    # Tests of the real tools fail, never skip, when the tools or the module are absent.
    if request.node.get_closest_marker("globus") is None:
        return
    if not have_globus():
        pytest.fail(GLOBUS_MISSING)
    import transfercore_globus_dsi

    if not os.path.exists(transfercore_globus_dsi.module_path()):
        pytest.fail(f"the DSI module was not built: {transfercore_globus_dsi.module_path()} is missing")


@pytest.fixture
def dsi_server(tmp_path: Path) -> Iterator[Callable[..., DsiServer]]:
    started: list[DsiServer] = []

    def start(url: str, **kw: object) -> DsiServer:
        work = tmp_path / f"srv{len(started)}"
        work.mkdir()
        server = DsiServer(url, work, **kw).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    return r


@pytest.fixture
def served(dsi_server: Callable[..., DsiServer], root: Path) -> DsiServer:
    return dsi_server(f"posix://{root}")


@pytest.fixture
def real_server(tmp_path: Path) -> Iterator[int]:
    """The real globus-gridftp-server with its own file storage, anonymous as nobody."""
    if not have_globus():
        pytest.fail(GLOBUS_MISSING)
    pidfile = tmp_path / "gsrv.pid"
    port = start_globus_server(0, pidfile, tmp_path / "gsrv.log")
    yield port
    try:
        os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)
    except (OSError, ValueError):
        pass


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory 'nobody' can read and write (pytest's tmp_path is private)."""
    import shutil

    d = Path(tempfile.mkdtemp(prefix="tc-dsi-pub-"))
    d.chmod(0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)
