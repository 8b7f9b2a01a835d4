"""The transfercore DSI inside the real globus-gridftp-server against its built-in file storage.

Three servers, the same binary, on loopback, taking turns within each round:

* ``dsi``: ``-dsi transfercore:posix://DIR`` (111 markers only from ``Writer.durable()``,
  ``226`` after ``complete()``: the file is fsynced and published);
* ``file``: the built-in file storage (markers without any flush);
* ``file -sync-writes``: the built-in storage with a global ``sync()`` before each marker.

Each PUT is ``globus-url-copy -fast -p 4`` (MODE E, four streams) of one file,
timed to durability: until ``globus-url-copy`` returns and a trailing ``sync``
has finished, so storage that leaves dirty pages at ``226`` pays for them.
CPU is user + system time of the session process (reaped by the listener).

Per-session start-up latency is the time from connecting to the ``230`` reply of
an anonymous login (the DSI starts Python, imports transfercore and opens the
driver there), then to the reply of a first ``SIZE``.

Where Python runs: the DSI logs, per upload, the seconds its data callbacks
spent in Python on the server's data threads; printed against the wall time.

    python benchmarks/bench_dsi.py                    # 1 GiB, 3 rounds, 20 logins each
    python benchmarks/bench_dsi.py --size 256MiB --rounds 5 --logins 50
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from transfercore_globus_dsi import launch
from transfercore_globus_dsi.testing import anonymous_args, loopback_args

from transfercore.sizes import format_size, parse_size
from transfercore.testing.loopback import free_port, wait_port

TICK = os.sysconf("SC_CLK_TCK")


def make_source(path: Path, size: int) -> None:
    block = os.urandom(8 * 1024 * 1024)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
        os.fsync(f.fileno())


def children_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / TICK


class Server:
    def __init__(self, name: str, work: Path, extra: list[str], dsi: bool, dsi_options: list[str] | None = None) -> None:
        self.name = name
        self.dir = work / re.sub(r"\W+", "-", name)
        self.dir.mkdir()
        self.port = free_port()
        self.log = work / f"{self.dir.name}.dsi.log"
        base = [*loopback_args(self.port), *anonymous_args(), "-d", "ERROR", "-l", str(work / f"{self.dir.name}.log")]
        if dsi:
            plan = launch.server_launch(f"posix://{self.dir}", [*base, *extra], log=str(self.log),
                                        dsi_extra=dsi_options or [])
            argv, env = list(plan.argv), dict(plan.env)
        else:
            argv, env = [launch.find_server(), *base, *extra], dict(os.environ)
        self.dsi = dsi
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)

    def url(self, name: str) -> str:
        # the DSI serves DIR as '/'; the built-in storage sees the real path
        return f"ftp://127.0.0.1:{self.port}{'' if self.dsi else str(self.dir)}/{name}"

    def settled_cpu(self) -> float:
        last = children_cpu(self.proc.pid)
        for _ in range(40):
            time.sleep(0.05)
            now = children_cpu(self.proc.pid)
            if now == last:
                return now
            last = now
        return last

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def put(server: Server, source: Path) -> tuple[float, float]:
    target = server.dir / "put.bin"
    if target.exists():
        target.unlink()
    subprocess.run(["sync"], check=True)
    cpu0 = server.settled_cpu()
    t0 = time.perf_counter()
    subprocess.run(
        ["globus-url-copy", "-fast", "-p", "4", f"file://{source}", server.url("put.bin")],
        check=True, stdout=subprocess.DEVNULL, timeout=600,
    )
    subprocess.run(["sync"], check=True)
    wall = time.perf_counter() - t0
    cpu = server.settled_cpu() - cpu0
    if target.stat().st_size != source.stat().st_size:
        raise SystemExit(f"{server.name}: the uploaded file has the wrong size")
    return wall, cpu


def login_latency(port: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    f = s.makefile("rb")

    def reply() -> bytes:
        line = f.readline()
        while line[3:4] == b"-":
            line = f.readline()
        return line

    reply()
    s.sendall(b"USER anonymous\r\n")
    reply()
    s.sendall(b"PASS x@y\r\n")
    if not reply().startswith(b"230"):
        raise SystemExit("login failed")
    t_login = time.perf_counter() - t0
    s.sendall(b"SIZE /missing.bin\r\n")
    reply()
    t_first = time.perf_counter() - t0
    s.sendall(b"QUIT\r\n")
    s.close()
    return t_login, t_first


def spread(values: list[float]) -> str:
    return f"{min(values):.3g}-{max(values):.3g}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1GiB")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--logins", type=int, default=20, help="logins per server for the start-up latency")
    ap.add_argument("--dir", help="where the servers store (default: a temporary directory)")
    ap.add_argument("--dsi-option", action="append", default=[], metavar="NAME=VALUE",
                    help="extra DSI option for the dsi server, e.g. durable_interval=0.5 (repeatable)")
    args = ap.parse_args()
    size = parse_size(args.size, what="--size")
    work = Path(tempfile.mkdtemp(prefix="bench-dsi-", dir=args.dir))
    servers: list[Server] = []
    try:
        source = work / "source.bin"
        make_source(source, size)
        servers = [
            Server("dsi", work, [], dsi=True, dsi_options=args.dsi_option),
            Server("file", work, [], dsi=False),
            Server("file -sync-writes", work, ["-sync-writes"], dsi=False),
        ]
        print(f"{format_size(size)} MODE E -p 4 PUT, {args.rounds} rounds, {os.cpu_count()} cores, "
              f"{time.strftime('%Y-%m-%d %H:%M')}, Python {sys.version.split()[0]} embedded from "
              f"{launch.build_info()['executable']}")
        walls: dict[str, list[float]] = {s.name: [] for s in servers}
        cpus: dict[str, list[float]] = {s.name: [] for s in servers}
        for r in range(args.rounds):
            order = servers[r % 3 :] + servers[: r % 3]
            for s in order:
                wall, cpu = put(s, source)
                walls[s.name].append(wall)
                cpus[s.name].append(cpu)
                print(f"  round {r + 1} {s.name:<18} {wall:6.2f} s  {size / wall / 1e6:7.0f} MB/s  cpu {cpu:5.2f} s",
                      flush=True)
        print()
        print(f"{'storage':<20} {'MB/s (median)':>14} {'s (spread)':>14} {'CPU s':>8}")
        med = {}
        for s in servers:
            med[s.name] = statistics.median(walls[s.name])
            print(f"{s.name:<20} {size / med[s.name] / 1e6:14.0f} {spread(walls[s.name]):>14} "
                  f"{statistics.median(cpus[s.name]):8.2f}")
        per_round_sync = [b / a for a, b in zip(walls["dsi"], walls["file -sync-writes"], strict=True)]
        per_round_plain = [b / a for a, b in zip(walls["dsi"], walls["file"], strict=True)]
        print(f"\nthroughput ratio dsi / file -sync-writes: {med['file -sync-writes'] / med['dsi']:.2f}x "
              f"(per round {', '.join(f'{x:.2f}' for x in per_round_sync)})")
        print(f"throughput ratio dsi / file:              {med['file'] / med['dsi']:.2f}x "
              f"(per round {', '.join(f'{x:.2f}' for x in per_round_plain)})")
        log = servers[0].log.read_text() if servers[0].log.exists() else ""
        py = [float(x) for x in re.findall(r"([\d.]+) s in Python on Globus data threads", log)]
        if py:
            print(f"Python on the server's data threads per upload: median {statistics.median(py):.2f} s "
                  f"({spread(py)}) of a median wall time of {med['dsi']:.2f} s")
        flush = [float(x) for x in re.findall(r"durable\(\) \d+ times in the marker thread, ([\d.]+) s", log)]
        final = [float(x) for x in re.findall(r"final durable\(\) and complete\(\) ([\d.]+) s", log)]
        if flush and final:
            print(f"durable() in the marker thread (off the data path): median {statistics.median(flush):.2f} s "
                  f"({spread(flush)}); last durable() + complete() after the last byte: median "
                  f"{statistics.median(final):.2f} s ({spread(final)})")
        print(f"\nper-session start-up, {args.logins} logins each (connect to 230; to the first SIZE reply):")
        for s in servers[:2]:
            logins, firsts = [], []
            for _ in range(args.logins):
                a, b = login_latency(s.port)
                logins.append(a)
                firsts.append(b)
            print(f"  {s.name:<8} login median {1000 * statistics.median(logins):6.1f} ms ({1000 * min(logins):.1f}-"
                  f"{1000 * max(logins):.1f}); first reply {1000 * statistics.median(firsts):6.1f} ms")
        log = servers[0].log.read_text() if servers[0].log.exists() else ""
        parts = re.findall(r"start-up: Python (\d+) ms, imports (\d+) ms, driver (\d+) ms", log)
        if parts:
            cols = list(zip(*[[int(x) for x in p] for p in parts], strict=True))
            print("  dsi sessions, median: Py_InitializeFromConfig {} ms, importing the bridge {} ms, "
                  "opening the driver {} ms".format(*(statistics.median(c) for c in cols)))
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
