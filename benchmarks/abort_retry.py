"""Abort an upload and retry it at once, ``--cycles`` times, against each server; count the failures.

The race: a retry that arrives while the aborted upload is still keeping
its durable part must neither meet that upload's partial object or spool
nor lose its own bytes.  Servers (``--servers``, comma-separated):

* ``posix``: ``transfercore serve --root``;
* ``hpss``: ``transfercore serve --driver hpss://`` (the emulator);
* ``globus``: the real ``globus-gridftp-server``, for comparison.

Each cycle is :func:`transfercore.testing.abortretry.cycle`, over the
variants in turn (MODE S and E, with and without ALLO, the client vanishing
or sending ABOR); the retry must answer 226 and a download must return the
upload byte for byte.

    python benchmarks/abort_retry.py --cycles 200 --servers posix,hpss,globus
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from transfercore.testing.abortretry import run
from transfercore.testing.loopback import free_port, start_globus_server, wait_port


def start_serve(tmp: Path, kind: str) -> tuple[subprocess.Popen[bytes], int, str]:
    port = free_port()
    env = os.environ | {"XDG_STATE_HOME": str(tmp / f"state-{kind}")}
    if kind == "posix":
        root = tmp / "root"
        root.mkdir()
        args = ["--root", str(root)]
    else:
        emu = tmp / "hpss"
        emu.mkdir()
        env = {k: v for k, v in env.items() if not k.startswith("HPSS_EMU_")} | {"HPSS_EMU_ROOT": str(emu)}
        args = ["--driver", "hpss:///?block=64KiB&segment=64KiB"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "transfercore", "serve", "--port", str(port), "--anonymous-write", *args],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / f"{kind}.log", "ab"),
    )
    wait_port(port, proc)
    return proc, port, "/up.bin"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=200)
    ap.add_argument("--size", type=int, default=4 * 1024 * 1024, help="bytes per upload")
    ap.add_argument("--servers", default="posix,hpss,globus")
    opts = ap.parse_args()
    payload = os.urandom(opts.size)
    failed = 0
    cleanup: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="abort-retry-") as name:
        tmp = Path(name)
        for kind in opts.servers.split(","):
            proc: subprocess.Popen[bytes] | None = None
            pid = None
            if kind == "globus":
                port = free_port()
                # anonymous is mapped to nobody, who cannot enter the private temporary directory
                area = Path(tempfile.mkdtemp(prefix="abort-retry-globus-"))
                area.chmod(0o777)
                cleanup.append(area)
                start_globus_server(port, tmp / "g.pid", tmp / "g.log")
                pid = int((tmp / "g.pid").read_text().split()[0])
                path = f"{area}/up.bin"
            else:
                proc, port, path = start_serve(tmp, kind)
            try:
                began = time.monotonic()
                failures = run(port, path, payload, opts.cycles)
                took = time.monotonic() - began
            finally:
                if proc is not None:
                    proc.terminate()
                    proc.wait(10)
                if pid is not None:
                    os.kill(pid, signal.SIGTERM)
            failed += len(failures)
            print(f"{kind}: {opts.cycles - len(failures)}/{opts.cycles} cycles passed in {took:.1f} s")
            for f in failures[:10]:
                print(f"  {f}")
    for area in cleanup:
        shutil.rmtree(area, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
