"""Loopback helpers for tests and benchmarks that run real servers.

Shared by the GridFTP interoperability tests, the GridFTP benchmark and the
power-loss measurement, which all start the real ``globus-gridftp-server``
beside ``transfercore serve`` on 127.0.0.1.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 20.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port``.

    Raises ``RuntimeError`` when ``proc`` (the server, if given) exits first or
    the time runs out, so a server that fails to start is reported at once.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before listening on port {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def wait_port_file(path: Path, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    """The port a server started with ``--port 0 --port-file PATH`` listens on, once it does.

    A port chosen by the kernel at ``listen`` cannot be taken by another process
    between choosing and listening, as one from :func:`free_port` can when many
    servers start at once (the test would then talk to someone else's server).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before it listened")
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            text = ""
        if text:
            return int(text)
        time.sleep(0.05)
    raise RuntimeError(f"the server wrote no port to {path} within {timeout:.0f} s")


def start_globus_server(port: int, pidfile: Path, log: Path) -> None:
    """Start the real ``globus-gridftp-server`` as a daemon on 127.0.0.1:``port``.

    Anonymous logins are mapped to the user ``nobody``, so directories it
    writes into must be writable by ``nobody``.  It forks one process per
    session; ``pidfile`` names the listener.  Returns once it listens.
    """
    subprocess.run(
        [
            "globus-gridftp-server", "-S", "-pidfile", str(pidfile),
            "-aa", "-anonymous-user", "nobody",
            "-p", str(port), "-control-interface", "127.0.0.1", "-data-interface", "127.0.0.1",
            "-d", "ERROR", "-l", str(log), "-c", "/dev/null",
        ],
        check=True,
    )
    wait_port(port)
