"""Loopback helpers for tests and benchmarks that run real servers.

Shared by the GridFTP interoperability tests, the GridFTP benchmark and the
power-loss measurement, which all start the real ``globus-gridftp-server``
beside ``transfercore serve`` on 127.0.0.1.
"""

from __future__ import annotations

import os
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


def wait_globus_listening(out: Path, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    """The port a ``globus-gridftp-server -p 0`` in the foreground listens on, once it does.

    ``out`` is where its standard output goes: it prints ``Server listening at HOST:PORT``
    once the control socket listens (the same reason as :func:`wait_port_file`).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = out.read_text(errors="replace")
        except FileNotFoundError:
            text = ""
        for line in text.splitlines():
            if line.startswith("Server listening at ") and line.rstrip()[-1:].isdigit():
                return int(line.rstrip().rsplit(":", 1)[1])
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before it listened")
        time.sleep(0.05)
    raise RuntimeError(f"the server said nowhere in {out} that it listens within {timeout:.0f} s")


def start_globus_server(port: int, pidfile: Path, log: Path) -> int:
    """Start the real ``globus-gridftp-server`` as a daemon on 127.0.0.1:``port``; its port.

    With ``port`` 0 the server picks its own port (for the reason given at
    :func:`wait_port_file`), found from the listener's socket once it listens.
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
    if not port:
        port = _listening_port_of(pidfile)
    wait_port(port)
    return port


def _listening_port_of(pidfile: Path, timeout: float = 20.0) -> int:
    """The TCP port the process named in ``pidfile`` listens on (Linux: /proc)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid = int(pidfile.read_text().split()[0])
            inodes = {os.readlink(f"/proc/{pid}/fd/{fd}")[len("socket:["):-1]
                      for fd in os.listdir(f"/proc/{pid}/fd")
                      if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:[")}
        except (OSError, ValueError, IndexError):  # no pidfile yet, or a descriptor closed meanwhile
            inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                rows = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                fields = row.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    return int(fields[1].rsplit(":", 1)[1], 16)
        time.sleep(0.05)
    raise RuntimeError(f"the server named in {pidfile} listened on no port within {timeout:.0f} s")


def cpus_of_threads(pid: int) -> set[frozenset[int]]:
    """The CPUs each thread of ``pid`` may run on (``Cpus_allowed_list``, Linux): one entry when
    they all keep the same ones."""
    found: set[frozenset[int]] = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Cpus_allowed_list:"):
                    cpus: set[int] = set()
                    for part in line.split(":", 1)[1].strip().split(","):
                        low, _, high = part.partition("-")
                        cpus |= set(range(int(low), int(high or low) + 1))
                    found.add(frozenset(cpus))
    return found


def open_paths(pid: int, *marks: str) -> list[str]:
    """What the descriptors of ``pid`` point at (Linux), those naming one of ``marks`` (all without any)."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if not marks or any(mark in target for mark in marks):
            found.append(target)
    return found
