"""PUT and GET throughput of ``transfercore serve`` against the real globus-gridftp-server.

Both servers run on loopback in the same run; the client is globus-url-copy.
Every timing includes a trailing ``sync`` so a server that leaves data in
the page cache at ``226`` pays for it, as ``transfercore serve`` already
has before its ``226``.

Wall-clock throughput on a shared machine is noisy, so the CPU time each
server spent per transfer (user + system) is printed too: for
``transfercore serve`` its own process, for the real server the children it
forks per session (their time reaches the daemon when it reaps them).

    python benchmarks/bench_gridftp.py --size 2GiB
    python benchmarks/bench_gridftp.py --size 1GiB --repeat 3 --mode stream
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from transfercore.sizes import parse_size
from transfercore.testing.loopback import free_port, start_globus_server, wait_port


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


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, children: bool) -> float:
    """User + system time of ``pid`` (or of its reaped children) in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # Fields after the command name start at field 3 (state): utime is 14, cutime 16.
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) / TICK


def settled_cpu(pid: int, children: bool) -> float:
    """The real server's session child exits just after the client: wait until it is reaped."""
    last = cpu_seconds(pid, children)
    for _ in range(20):
        time.sleep(0.05)
        now = cpu_seconds(pid, children)
        if now == last:
            return now
        last = now
    return last


def timed(cmd: list[str], pid: int, children: bool) -> tuple[float, float]:
    """Wall seconds including the trailing sync, and the server's CPU seconds."""
    cpu0 = settled_cpu(pid, children)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    os.sync()  # the trailing flush: durability is part of the measurement
    wall = time.perf_counter() - t0
    return wall, settled_cpu(pid, children) - cpu0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="2GiB", help="file size (default 2GiB)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per case; the median is printed")
    ap.add_argument("--parallel", type=int, default=4, help="MODE E data connections (default 4)")
    ap.add_argument("--dir", help="working directory (default: a new temporary one)")
    ap.add_argument("--mode", choices=("both", "stream", "modeE"), default="both", help="which modes to run")
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
    start_globus_server(real_port, pidfile, work / "real.log")
    wait_port(ours_port)
    wait_port(real_port)
    real_pid = int(pidfile.read_text().split()[0])
    servers = {
        "transfercore": (f"ftp://127.0.0.1:{ours_port}", "", ours_root, ours.pid, False),
        "globus": (f"ftp://127.0.0.1:{real_port}", str(real_root), real_root, real_pid, True),
    }
    all_modes = {"stream": [], f"modeE-p{args.parallel}": ["-fast", "-p", str(args.parallel)]}
    modes = {m: f for m, f in all_modes.items() if args.mode == "both" or m.startswith(args.mode)}
    results: dict[tuple[str, str, str], float] = {}
    cpu: dict[tuple[str, str, str], float] = {}
    try:
        for mode, flags in modes.items():
            runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
            # The servers take turns within each repeat, so drift in the
            # machine's load hits both alike instead of one server's block of runs.
            for _ in range(args.repeat):
                for name, (base, prefix, root, pid, children) in servers.items():
                    dest = root / "dst.bin"
                    if dest.exists():
                        dest.unlink()
                    os.sync()
                    runs.setdefault((name, "PUT"), []).append(
                        timed(
                            ["globus-url-copy", *flags, f"file://{src}", f"{base}{prefix}/dst.bin"], pid, children
                        )
                    )
                    back = work / "back.bin"
                    if back.exists():
                        back.unlink()
                    os.sync()
                    runs.setdefault((name, "GET"), []).append(
                        timed(
                            ["globus-url-copy", *flags, f"{base}{prefix}/dst.bin", f"file://{back}"], pid, children
                        )
                    )
                    if os.path.getsize(back) != size:
                        raise SystemExit(f"{name} {mode}: GET returned a wrong size")
            for name in servers:
                for op in ("PUT", "GET"):
                    results[(mode, op, name)] = size / statistics.median(w for w, _ in runs[(name, op)]) / 1e6
                    cpu[(mode, op, name)] = statistics.median(c for _, c in runs[(name, op)])
                print(
                    f"{mode:10} {name:13} PUT {results[(mode, 'PUT', name)]:8.1f} MB/s "
                    f"({cpu[(mode, 'PUT', name)]:5.2f} s CPU)   "
                    f"GET {results[(mode, 'GET', name)]:8.1f} MB/s ({cpu[(mode, 'GET', name)]:5.2f} s CPU)",
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
            print(
                f"{mode:10} {op}: transfercore / globus = {ratio:.2f}x throughput, "
                f"server CPU {cpu[(mode, op, 'transfercore')]:.2f} s vs {cpu[(mode, op, 'globus')]:.2f} s"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
