"""PUT and GET throughput of ``transfercore serve`` against the real globus-gridftp-server.

Both servers run on loopback in the same run; the client is globus-url-copy.
Every timing includes a trailing ``sync`` so a server that leaves data in
the page cache at ``226`` pays for it, as ``transfercore serve`` already
has before its ``226``.

    python benchmarks/bench_gridftp.py --size 2GiB
    python benchmarks/bench_gridftp.py --size 256MiB --repeat 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from transfercore.sizes import parse_size


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def make_source(path: Path, size: int) -> None:
    block = os.urandom(8 * 1024 * 1024)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
        f.flush()
        os.fsync(f.fileno())


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    os.sync()  # the trailing flush: durability is part of the measurement
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="2GiB", help="file size (default 2GiB)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per case; the median is printed")
    ap.add_argument("--parallel", type=int, default=4, help="MODE E data connections (default 4)")
    ap.add_argument("--dir", help="working directory (default: a new temporary one)")
    args = ap.parse_args()
    for tool in ("globus-url-copy", "globus-gridftp-server"):
        if not shutil.which(tool):
            print(f"{tool} is not installed (Debian: globus-gass-copy-progs, globus-gridftp-server-progs)")
            return 2
    size = parse_size(args.size)
    work = Path(args.dir or tempfile.mkdtemp(prefix="tc-bench-gridftp-"))
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)
    ours_root = work / "ours"
    real_root = work / "real"
    for d in (ours_root, real_root):
        d.mkdir(exist_ok=True)
    real_root.chmod(0o777)  # the real server writes as 'nobody'
    src = work / "src.bin"
    src.parent.chmod(0o755)
    print(f"making a {size} byte source file ...", flush=True)
    make_source(src, size)
    src.chmod(0o644)

    ours_port, real_port = free_port(), free_port()
    ours = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "transfercore",
            "serve",
            "--root",
            str(ours_root),
            "--port",
            str(ours_port),
            "--anonymous-write",
        ],
        stderr=open(work / "ours.log", "wb"),
    )
    pidfile = work / "real.pid"
    subprocess.run(
        [
            "globus-gridftp-server",
            "-S",
            "-pidfile",
            str(pidfile),
            "-aa",
            "-anonymous-user",
            "nobody",
            "-p",
            str(real_port),
            "-control-interface",
            "127.0.0.1",
            "-data-interface",
            "127.0.0.1",
            "-d",
            "ERROR",
            "-l",
            str(work / "real.log"),
            "-c",
            "/dev/null",
        ],
        check=True,
    )
    wait_port(ours_port)
    wait_port(real_port)
    servers = {
        "transfercore": (f"ftp://127.0.0.1:{ours_port}", "", ours_root),
        "globus": (f"ftp://127.0.0.1:{real_port}", str(real_root), real_root),
    }
    modes = {"stream": [], f"modeE-p{args.parallel}": ["-fast", "-p", str(args.parallel)]}
    results: dict[tuple[str, str, str], float] = {}
    try:
        for mode, flags in modes.items():
            for name, (base, prefix, root) in servers.items():
                put, get = [], []
                for _ in range(args.repeat):
                    dest = root / "dst.bin"
                    if dest.exists():
                        dest.unlink()
                    os.sync()
                    put.append(timed(["globus-url-copy", *flags, f"file://{src}", f"{base}{prefix}/dst.bin"]))
                    back = work / "back.bin"
                    if back.exists():
                        back.unlink()
                    os.sync()
                    get.append(
                        timed(["globus-url-copy", *flags, f"{base}{prefix}/dst.bin", f"file://{back}"])
                    )
                    if os.path.getsize(back) != size:
                        raise SystemExit(f"{name} {mode}: GET returned a wrong size")
                results[(mode, "PUT", name)] = size / statistics.median(put) / 1e6
                results[(mode, "GET", name)] = size / statistics.median(get) / 1e6
                print(
                    f"{mode:10} {name:13} PUT {results[(mode, 'PUT', name)]:8.1f} MB/s   "
                    f"GET {results[(mode, 'GET', name)]:8.1f} MB/s",
                    flush=True,
                )
    finally:
        ours.terminate()
        ours.wait(10)
        try:
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)
        except (OSError, ValueError):
            pass
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"size {size} bytes, median of {args.repeat}, each including a trailing sync")
    for mode in modes:
        for op in ("PUT", "GET"):
            ratio = results[(mode, op, "transfercore")] / results[(mode, op, "globus")]
            print(f"{mode:10} {op}: transfercore / globus = {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
