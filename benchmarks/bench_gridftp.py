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
    python benchmarks/bench_gridftp.py --size 1GiB --repeat 3 --gsi

``--gsi`` adds ``gsiftp://`` MODE E PUT and GET with DCAU (the default) and
with ``-dcpriv``, both servers authenticating a ``grid-proxy-init`` proxy of a
throw-away test CA.
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
    ap.add_argument("--gsi", action="store_true", help="also gsiftp:// MODE E with DCAU and with -dcpriv")
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
    gsi_args: list[str] = []
    pki = None
    if args.gsi:
        from transfercore.testing.gsi_pki import GridPKI

        grid = work / "grid"
        grid.mkdir()
        grid.chmod(0o755)  # the real server reads the CA directory as nobody
        pki = GridPKI.make(grid)
        os.environ.update(pki.env(pki.grid_proxy_init(grid / "x509up", valid="4:00")))
        gsi_args = ["--host-cert", str(pki.host_cert), "--host-key", str(pki.host_key),
                    "--ca-dir", str(pki.ca_dir), "--gridmap", str(pki.gridmap)]
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
            *gsi_args,
        ],
        stderr=open(work / "ours.log", "wb"),
    )
    pidfile = work / "real.pid"
    start_globus_server(real_port, pidfile, work / "real.log")
    wait_port(ours_port)
    wait_port(real_port)
    real_pid = int(pidfile.read_text().split()[0])
    plain = {
        "transfercore": (f"ftp://127.0.0.1:{ours_port}", "", ours_root, ours.pid, False),
        "globus": (f"ftp://127.0.0.1:{real_port}", str(real_root), real_root, real_pid, True),
    }
    all_modes = {"stream": [], f"modeE-p{args.parallel}": ["-fast", "-p", str(args.parallel)]}
    modes = {m: f for m, f in all_modes.items() if args.mode == "both" or m.startswith(args.mode)}
    server_sets = {m: plain for m in modes}
    gsi_pidfile = work / "real-gsi.pid"
    if pki is not None:
        gsi_port = free_port()
        pki.start_real_server(gsi_port, gsi_pidfile, work / "real-gsi.log")
        wait_port(gsi_port)
        gsi_pid = int(gsi_pidfile.read_text().split()[0])
        secured = {
            "transfercore": (f"gsiftp://127.0.0.1:{ours_port}", "", ours_root, ours.pid, False),
            "globus": (f"gsiftp://127.0.0.1:{gsi_port}", str(real_root), real_root, gsi_pid, True),
        }
        flags = ["-fast", "-p", str(args.parallel)]
        for name, extra in ((f"gsi-p{args.parallel}-dcau", []), (f"gsi-p{args.parallel}-dcpriv", ["-dcpriv"])):
            modes[name] = flags + extra
            server_sets[name] = secured
    results: dict[tuple[str, str, str], float] = {}
    cpu: dict[tuple[str, str, str], float] = {}
    try:
        for mode, flags in modes.items():
            servers = server_sets[mode]
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
            for name in plain:
                spread = {}
                for op in ("PUT", "GET"):
                    results[(mode, op, name)] = size / statistics.median(w for w, _ in runs[(name, op)]) / 1e6
                    cpu[(mode, op, name)] = statistics.median(c for _, c in runs[(name, op)])
                    rates = [size / w / 1e6 for w, _ in runs[(name, op)]]
                    spread[op] = f"[{min(rates):.0f}-{max(rates):.0f}]"
                print(
                    f"{mode:16} {name:13} PUT {results[(mode, 'PUT', name)]:8.1f} MB/s {spread['PUT']:11} "
                    f"({cpu[(mode, 'PUT', name)]:5.2f} s CPU)   "
                    f"GET {results[(mode, 'GET', name)]:8.1f} MB/s {spread['GET']:11} "
                    f"({cpu[(mode, 'GET', name)]:5.2f} s CPU)",
                    flush=True,
                )
    finally:
        ours.terminate()
        ours.wait(10)
        for pf in (pidfile, gsi_pidfile):
            try:
                os.kill(int(pf.read_text().split()[0]), signal.SIGTERM)
            except (OSError, ValueError):
                pass
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"size {size} bytes, median of {args.repeat} [min-max MB/s], each including a trailing sync")
    for mode in modes:
        for op in ("PUT", "GET"):
            ratio = results[(mode, op, "transfercore")] / results[(mode, op, "globus")]
            print(
                f"{mode:16} {op}: transfercore / globus = {ratio:.2f}x throughput, "
                f"server CPU {cpu[(mode, op, 'transfercore')]:.2f} s vs {cpu[(mode, op, 'globus')]:.2f} s"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
