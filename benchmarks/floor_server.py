"""The floor a durable ``226`` sets inside the real Globus GridFTP server, measured beside the servers.

:mod:`durable_floor` times the flushes alone, with no server in the way, as
if the server cost nothing.  But a GridFTP session moves one file at a time
(the client waits for each ``226`` before its next ``STOR``), so a server
that makes a file durable and published before its ``226`` pays the flushes
*in series* with its own per-file work, and no amount of sharing between
sessions takes them off a session's path.  ``floor_dsi.c`` is that server
and nothing more: the real ``globus-gridftp-server`` with a storage module
in C that receives each file into a hidden name, flushes it, renames it and
flushes its directory before the ``226``, with no Python, driver, record or
marker.  Served with ``none`` instead of ``durable``, the same module makes
nothing durable, which shows what the module itself costs beside the
server's built-in storage.

The module is compiled here with the system's C compiler against Debian's
``libglobus-gridftp-server-dev`` (what the transfercore DSI builds against).
It is a measuring tool of the benchmarks, not part of transfercore: it keeps
none of transfercore's rules beyond the two flushes, and refuses what the
benchmarks' trees do not send (no ``ALLO``, ``ESTO``, restarts, downloads).

    python benchmarks/floor_server.py DIR     # build libglobus_gridftp_server_floor.so into DIR
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULE = "libglobus_gridftp_server_floor.so"
#: the names the benchmarks print for the two modes
DURABLE = "server floor, durable"
NAMES = {DURABLE: True, "server floor, no flush": False}


def _pkg_config(*args: str) -> list[str]:
    if shutil.which("pkg-config") is None:
        return []
    proc = subprocess.run(["pkg-config", *args, "globus-gridftp-server"], capture_output=True, text=True)
    return shlex.split(proc.stdout) if proc.returncode == 0 else []


def build(target_dir: Path) -> Path:
    """Compile ``floor_dsi.c`` into ``target_dir``; the module's path."""
    cc = shlex.split(str(sysconfig.get_config_var("CC") or "cc"))
    cflags = _pkg_config("--cflags") or ["-I/usr/include/globus"]
    libs = _pkg_config("--libs") or ["-lglobus_gridftp_server"]
    target_dir.mkdir(parents=True, exist_ok=True)
    final = target_dir / MODULE
    with tempfile.TemporaryDirectory(prefix="floor-dsi-") as tmp:
        out = Path(tmp) / MODULE
        subprocess.run(
            [*cc, "-O2", "-Wall", "-fPIC", "-shared", *cflags, "-o", str(out), str(HERE / "floor_dsi.c"),
             *libs, "-lglobus_common", "-lpthread"],
            check=True,
        )
        shutil.copyfile(out, final)
    return final


def launch(server: str, module: Path, root: Path, durable: bool, args: list[str]) -> tuple[list[str], dict[str, str]]:
    """argv and environment of ``server`` (the real server's executable) serving ``root`` as
    ``/`` through ``module`` (what :func:`build` returned)."""
    env = dict(os.environ)
    # the server finds a storage module by its name on the library path
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(module.parent), env.get("LD_LIBRARY_PATH")]))
    mode = "durable" if durable else "none"
    return [server, *args, "-dsi", f"floor:{mode}:{root}"], env


def main() -> int:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
    print(build(target))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
