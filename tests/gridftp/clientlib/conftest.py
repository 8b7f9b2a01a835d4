"""Fixtures: ``ftpcheck`` (ftpcheck.c compiled against the Globus FTP client library at test time)
and the four servers it is run against, each started once per module on 127.0.0.1.

* ``real``: the real ``globus-gridftp-server`` with its own file storage, the reference;
* ``serve``: ``transfercore serve --root``;
* ``hpss``: ``transfercore serve --driver hpss://`` on the HPSS emulator;
* ``dsi``: the real server with the transfercore DSI (``transfercore globus-server posix://``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from transfercore.testing.loopback import wait_globus_listening, wait_port, wait_port_file

SOURCE = Path(__file__).with_name("ftpcheck.c")
LIBRARY_MISSING = (
    "the Globus FTP client library and a C compiler are needed to build ftpcheck.c: "
    "apt-get install gcc pkg-config libglobus-ftp-client-dev"
)
SERVERS = ["real", "serve", "hpss", "dsi"]


@pytest.fixture(scope="session")
def ftpcheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checker program; a missing library or compiler fails the tests (CI installs both)."""
    gcc, pkg_config = shutil.which("gcc"), shutil.which("pkg-config")
    if gcc is None or pkg_config is None:
        pytest.fail(LIBRARY_MISSING)
    flags = subprocess.run(
        [pkg_config, "--cflags", "--libs", "globus-ftp-client", "globus-common"],
        capture_output=True, text=True, check=False,
    )
    if flags.returncode != 0:
        pytest.fail(f"{LIBRARY_MISSING} (pkg-config: {flags.stderr.strip()})")
    out = tmp_path_factory.mktemp("ftpcheck") / "ftpcheck"
    build = subprocess.run(
        [gcc, "-O1", "-Wall", "-Wextra", "-Werror", "-o", str(out), str(SOURCE), *flags.stdout.split()],
        capture_output=True, text=True, check=False,
    )
    if build.returncode != 0:
        pytest.fail(f"compiling {SOURCE.name} failed:\n{build.stderr}")
    return out


class Target:
    """A running server and the local directory its clients' ``/base`` is."""

    def __init__(self, name: str, port: int, root: Path, url_base: str) -> None:
        self.name = name
        self.port = port
        self.root = root
        self.url_base = url_base  # URL path that names ``root``

    def url(self, rel: str = "") -> str:
        return f"ftp://127.0.0.1:{self.port}{self.url_base}/{rel}"

    def path(self, rel: str) -> Path:
        return self.root / rel


def _globus_args(port: int, log: Path) -> list[str]:
    from transfercore_globus_dsi.testing import anonymous_args, loopback_args

    return [*loopback_args(port), *anonymous_args(), "-d", "ERROR", "-l", str(log)]


@pytest.fixture(scope="module", params=SERVERS)
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    name: str = request.param
    # A directory every session user can write (pytest's own tmp directories are private).
    work = Path(tempfile.mkdtemp(prefix=f"tc-clientlib-{name}-"))
    work.chmod(0o777)
    root = work / "root"
    root.mkdir()
    root.chmod(0o777)
    # Every server picks its own port (-p 0 / --port 0), so no other process can take it between
    # choosing and listening: the real server and the DSI say it on stdout, serve in its port file.
    port = 0
    port_file = work / "port"
    env = os.environ | {"XDG_STATE_HOME": str(work / "state")}
    if name == "real":
        argv = ["globus-gridftp-server", *_globus_args(port, work / "server.log")]
        url_base = str(root)  # the real server serves the whole file system
    elif name == "dsi":
        argv = [sys.executable, "-m", "transfercore", "globus-server", "--log", str(work / "dsi.log"),
                f"posix://{root}", *_globus_args(port, work / "server.log")]
        url_base = ""
    else:
        serve = [sys.executable, "-m", "transfercore", "serve", "--port", "0", "--port-file", str(port_file),
                 "--anonymous-write",
                 "--marker-interval", "0.5", "--data-timeout", "20"]
        if name == "serve":
            argv = [*serve, "--root", str(root)]
        else:
            # uploads without ALLO are spooled; a local spool makes them restartable (in memory they are not)
            argv = [*serve, "--driver", "hpss:///?block=64KiB&segment=64KiB", "--spool-dir", str(work / "spool")]
            env["HPSS_EMU_ROOT"] = str(root)
        url_base = ""
    log = open(work / "stderr.log", "ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        if name in ("real", "dsi"):
            port = wait_globus_listening(work / "stderr.log", proc)
        else:
            port = wait_port_file(port_file, proc)
        wait_port(port, proc)
        yield Target(name, port, root, url_base)
    finally:
        # the real server forks a process per session: end the whole group it leads
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        shutil.rmtree(work, ignore_errors=True)
