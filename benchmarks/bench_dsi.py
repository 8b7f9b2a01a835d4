"""The transfercore DSI inside the real globus-gridftp-server against its built-in file storage.

Three servers, the same binary, on loopback, taking turns within each round
(each round starts with the next server, so none always goes first):

* ``dsi``: ``-dsi transfercore:posix://DIR`` (111 markers only from ``Writer.durable()``,
  ``226`` after ``complete()``: the file is fsynced and published);
* ``file``: the built-in file storage (markers without any flush);
* ``file -sync-writes``: the built-in storage with a global ``sync()`` before each marker;
* ``dsi warm`` (``--warm N``, default 4): the DSI with N session processes started ahead
  (``transfercore globus-server --warm N``); every timing begins with the pool full and
  counts the CPU of the pool's processes, their warm-up included.

Measured, each timed to durability (until the client returns and a trailing
``sync`` has finished, so storage that leaves dirty pages at ``226`` pays for
them), medians with the spread over the rounds:

* a ``globus-url-copy -fast -p 4`` PUT of one large file (MODE E, four
  streams), and the CPU (user + system) of the session processes per GiB;
* session start: connect to the ``230`` of an anonymous login, to the reply of
  a first ``SIZE``, to the ``226`` of a 1 KiB ``STOR``; CPU per session;
* a tree of small files, ``globus-url-copy -r -cc 4 -fast``; in the same rounds the
  floor a durable ``226`` per file sets on this file system (:mod:`durable_floor`: as
  many writers as sessions, each file created, written, flushed, renamed and its
  directory flushed, no server), and the same without the flushes; and the real server
  with nothing but a durable ``226`` (:mod:`floor_server`: a storage module in C that
  flushes each file, renames it and flushes its directory before the ``226``, no
  Python), and the same module without the flushes. The first floor leaves out the
  server, the second keeps it: a session waits for each ``226`` before its next file,
  so the flushes come in series with the server's own work a file.

The machine's load (``os.getloadavg``) is printed with every timing, and the
file system it works on; ``--fs ext4`` (or ``xfs``) puts everything on a new
one in a loop-mounted image (:mod:`scratchfs`; root needed).

    python benchmarks/bench_dsi.py                    # 1 GiB, 3 rounds, 1000-file tree
    python benchmarks/bench_dsi.py --size 256MiB --rounds 5 --logins 20 --files 0
    python benchmarks/bench_dsi.py --size 64MiB --logins 3 --rounds 1 --tree-rounds 5 --fs ext4
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import floor_server
from durable_floor import copy_tree, writers_of
from scratchfs import KINDS, describe, scratch_fs
from transfercore_globus_dsi import launch
from transfercore_globus_dsi.testing import anonymous_args, loopback_args
from transfercore_globus_dsi.warm import WarmPool

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
    def __init__(self, name: str, work: Path, extra: list[str], dsi: bool, dsi_options: list[str] | None = None,
                 package: Path | None = None, warm: int = 0, floor: tuple[Path, bool] | None = None) -> None:
        self.name = name
        self.dir = work / re.sub(r"\W+", "-", name)
        self.dir.mkdir()
        self.port = free_port()
        self.log = work / f"{self.dir.name}.dsi.log"
        base = [*loopback_args(self.port), *anonymous_args(), "-d", "ERROR", "-l", str(work / f"{self.dir.name}.log")]
        if floor is not None:
            # the real server with the floor module (floor_server.py): its directory and whether it flushes
            argv, env = floor_server.launch(launch.find_server(), floor[0], self.dir, floor[1], [*base, *extra])
        elif dsi:
            plan = launch.server_launch(f"posix://{self.dir}", [*base, *extra], log=str(self.log),
                                        dsi_extra=dsi_options or [])
            argv, env = list(plan.argv), dict(plan.env)
            if package is not None:
                # another version of the DSI: its Python package and its compiled module, both from there
                env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package), env.get("PYTHONPATH")]))
                env["LD_LIBRARY_PATH"] = os.pathsep.join(
                    filter(None, [str(package / "transfercore_globus_dsi"), env.get("LD_LIBRARY_PATH")]))
                exe = env.get("TRANSFERCORE_DSI_PYTHON") or str(launch.build_info()["executable"])
                subprocess.run([exe, "-m", "compileall", "-q", str(package)], check=True, env=env,
                               stdout=subprocess.DEVNULL)
        else:
            argv, env = [launch.find_server(), *base, *extra], dict(os.environ)
        self.pool: WarmPool | None = None
        if warm:
            self.pool = WarmPool(plan, warm).start()
            argv, env = list(self.pool.daemon.argv), dict(self.pool.daemon.env)
        self.dsi = dsi
        #: served as '/' (the DSI and the floor module), not under its real path
        self.rooted = dsi or floor is not None
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)

    def path(self, name: str) -> str:
        # the DSI serves DIR as '/'; the built-in storage sees the real path
        return f"{'' if self.rooted else str(self.dir)}/{name}"

    def url(self, name: str) -> str:
        return f"ftp://127.0.0.1:{self.port}{self.path(name)}"

    def cpu(self) -> float:
        # a warm pool's processes are its children, not the daemon's: their CPU, warm-up included
        return children_cpu(self.proc.pid) + (self.pool.cpu_seconds() if self.pool else 0.0)

    def settled_cpu(self) -> float:
        last = self.cpu()
        for _ in range(40):
            time.sleep(0.05)
            now = self.cpu()
            if now == last:
                return now
            last = now
        return last

    def ready(self) -> None:
        """A warm pool full again before the next timing (as between a site's bursts)."""
        deadline = time.monotonic() + 30
        while self.pool is not None and self.pool.idle() < self.pool.size and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if self.pool is not None:
            self.pool.stop(sessions=True)


class Floor:
    """Not a server: the floor a durable ``226`` per file sets (:mod:`durable_floor`), in the same rounds."""

    def __init__(self, name: str, work: Path, durable: bool) -> None:
        self.name = name
        self.dir = work / re.sub(r"\W+", "-", name)
        self.durable = durable

    def ready(self) -> None:
        pass

    def tree(self, tree: Path, opts: list[str]) -> tuple[float, float]:
        return copy_tree(tree, self.dir / "tree", writers_of(opts), self.durable)


def timed(server: Server, argv: list[str], target: Path) -> tuple[float, float]:
    """Run one client command against ``server``; wall time to a trailing ``sync``, session CPU."""
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    subprocess.run(["sync"], check=True)
    cpu0 = server.settled_cpu()
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, timeout=900)
    subprocess.run(["sync"], check=True)
    wall = time.perf_counter() - t0
    return wall, server.settled_cpu() - cpu0


def put(server: Server, source: Path) -> tuple[float, float]:
    target = server.dir / "put.bin"
    wall, cpu = timed(server, ["globus-url-copy", "-fast", "-p", "4", f"file://{source}", server.url("put.bin")], target)
    if target.stat().st_size != source.stat().st_size:
        raise SystemExit(f"{server.name}: the uploaded file has the wrong size")
    return wall, cpu


def put_tree(server: Server, tree: Path, files: int, opts: list[str]) -> tuple[float, float]:
    target = server.dir / "tree"
    wall, cpu = timed(server, ["globus-url-copy", "-r", *opts, f"file://{tree}/", server.url("tree/")], target)
    got = sum(len(f) for _, _, f in os.walk(target))
    if got != files:
        raise SystemExit(f"{server.name}: {got} of {files} files arrived")
    return wall, cpu


def make_tree(path: Path, files: int, size: int) -> None:
    for i in range(files):
        d = path / f"d{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}").write_bytes(os.urandom(size))


class Control:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.f = self.sock.makefile("rb")

    def reply(self) -> bytes:
        line = self.f.readline()
        while line[3:4] == b"-":
            line = self.f.readline()
        return line

    def cmd(self, text: str) -> bytes:
        self.sock.sendall(text.encode() + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.sock.close()


def session_start(server: Server, payload: bytes) -> tuple[float, float, float]:
    """Connect to the 230 of an anonymous login, to the reply of a first SIZE, and to the
    226 of a MODE S STOR of ``payload`` (ALLO sent); seconds."""
    t0 = time.perf_counter()
    c = Control(server.port)
    try:
        c.reply()
        c.cmd("USER anonymous")
        if not c.cmd("PASS x@y").startswith(b"230"):
            raise SystemExit(f"{server.name}: login failed")
        t_login = time.perf_counter() - t0
        c.cmd(f"SIZE {server.path('missing.bin')}")
        t_first = time.perf_counter() - t0
        c.cmd("TYPE I")
        c.cmd(f"ALLO {len(payload)}")
        pasv = c.cmd("PASV").decode()
        nums = [int(n) for n in pasv[pasv.index("(") + 1 : pasv.index(")")].split(",")]
        data = socket.create_connection((".".join(map(str, nums[:4])), nums[4] * 256 + nums[5]), timeout=60)
        c.sock.sendall(f"STOR {server.path('tiny.bin')}\r\n".encode())
        if not c.reply().startswith(b"150"):
            raise SystemExit(f"{server.name}: STOR refused")
        data.sendall(payload)
        data.close()
        if not c.reply().startswith(b"226"):
            raise SystemExit(f"{server.name}: the tiny upload failed")
        t_stored = time.perf_counter() - t0
        c.cmd("QUIT")
    finally:
        c.close()
    return t_login, t_first, t_stored


def python_floor(exe: str, url: str, runs: int = 7) -> list[tuple[str, float]]:
    """CPU (ms, median of ``runs``) of the embedded interpreter running what a session runs, step by step."""
    from transfercore_globus_dsi.config import parse_config
    from transfercore_globus_dsi.launch import resolve_entry_point

    ref = resolve_entry_point(parse_config(url).location.driver).split("=", 1)[1]
    opened = (f"from transfercore_globus_dsi import bridge\nfrom transfercore.location import parse_location\n"
              f"bridge.open_driver(parse_location({url!r}), {ref!r})\n")
    steps = [
        ("the interpreter", "pass"),
        ("+ attrs", "import attrs"),
        ("+ the DSI's Python part", "from transfercore_globus_dsi import bridge"),
        ("+ the driver opened", opened),
        ("the same through the registry (stevedore)",
         f"from transfercore_globus_dsi import bridge\nfrom transfercore.registry import open_location\n"
         f"open_location({url!r})"),
    ]
    out = []
    for name, code in steps:
        cpus = []
        for _ in range(runs):
            before = os.times()
            subprocess.run([exe, "-c", code], check=True)
            after = os.times()
            cpus.append(1000 * (after.children_user - before.children_user + after.children_system - before.children_system))
        out.append((name, med(cpus)))
    return out


def spread(values: list[float]) -> str:
    return f"{min(values):.3g}-{max(values):.3g}"


def med(values: list[float]) -> float:
    return statistics.median(values)


def load() -> str:
    return "load " + ", ".join(f"{x:.1f}" for x in os.getloadavg())


def rounds(servers: list[Server | Floor], n: int, what: str, run: Callable[[Any], tuple[float, float]]) -> tuple[
    dict[str, list[float]], dict[str, list[float]]
]:
    """``n`` rounds, the servers taking turns (each round starts with the next one)."""
    walls: dict[str, list[float]] = {s.name: [] for s in servers}
    cpus: dict[str, list[float]] = {s.name: [] for s in servers}
    for r in range(n):
        order = servers[r % len(servers) :] + servers[: r % len(servers)]
        for s in order:
            # every pool full first: a refill must not run into another server's timing
            for other in servers:
                other.ready()
            wall, cpu = run(s)
            walls[s.name].append(wall)
            cpus[s.name].append(cpu)
            print(f"  {what} round {r + 1} {s.name:<30} {wall:7.2f} s  cpu {cpu:6.2f} s  ({load()})", flush=True)
    return walls, cpus


def paired(walls: dict[str, list[float]], cpus: dict[str, list[float]]) -> None:
    """The DSI against the baseline DSI (``--dsi-baseline``), round by round."""
    if "dsi baseline" not in walls:
        return
    for what, values in (("wall", walls), ("CPU", cpus)):
        diff = [a - b for a, b in zip(values["dsi"], values["dsi baseline"], strict=True)]
        lower = sum(d < 0 for d in diff)
        print(f"  dsi - dsi baseline, {what}: median {med(diff):+.3f} s ({min(diff):+.3f} to {max(diff):+.3f}); "
              f"lower in {lower} of {len(diff)} rounds")


def ratios(walls: dict[str, list[float]]) -> None:
    """Speed of every DSI server against every built-in storage one (a ratio of times)."""
    for base in [n for n in walls if n.startswith("dsi")]:
        for other in [n for n in walls if not n.startswith("dsi")]:
            per = [b / a for a, b in zip(walls[base], walls[other], strict=True)]
            print(f"  speed {base} / {other:<18} {med(walls[other]) / med(walls[base]):5.2f}x of medians "
                  f"(per round {', '.join(f'{x:.2f}' for x in per)}; median of rounds {med(per):.2f}x)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1GiB")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--logins", type=int, default=10, help="sessions per server for the start-up times")
    ap.add_argument("--files", type=int, default=1000, help="files of the -r -cc 4 tree (0: no tree)")
    ap.add_argument("--file-size", default="16KiB")
    ap.add_argument("--tree-rounds", type=int, default=None, help="rounds of the tree (default: --rounds)")
    ap.add_argument("--tree-opts", action="append", default=None, metavar="OPTIONS",
                    help="globus-url-copy options of a tree run (repeatable: one run each; default '-cc 4 -fast')")
    ap.add_argument("--dir", help="where the servers store (default: a temporary directory)")
    ap.add_argument("--dsi-option", action="append", default=[], metavar="NAME=VALUE",
                    help="extra DSI option for the dsi server, e.g. durable_interval=0.5 (repeatable)")
    ap.add_argument("--dsi-baseline", metavar="DIR", type=Path,
                    help="a directory holding another version of the transfercore_globus_dsi package (with its "
                         "compiled module): served as 'dsi baseline' in the same rounds, for an A/B comparison")
    ap.add_argument("--warm", type=int, default=4, metavar="N",
                    help="also serve 'dsi warm': the DSI with N warm session processes (transfercore globus-server "
                         "--warm N); each timing starts with the pool full, its warm-up CPU counted (0: not served)")
    ap.add_argument("--fs", choices=KINDS,
                    help="everything on a new file system of this kind in a loop-mounted image (root needed; "
                         "see benchmarks/scratchfs.py)")
    ap.add_argument("--fs-size", default="8GiB", help="the image's size (default 8GiB)")
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-dsi-", dir=args.dir))
    try:
        with scratch_fs(scratch, args.fs, parse_size(args.fs_size, what="--fs-size"), "bench_dsi") as work:
            return bench(work, args)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def bench(work: Path, args: argparse.Namespace) -> int:
    size = parse_size(args.size, what="--size")
    file_size = parse_size(args.file_size, what="--file-size")
    servers: list[Server] = []
    try:
        source = work / "source.bin"
        make_source(source, size)
        tree = work / "tree-source"
        if args.files:
            make_tree(tree, args.files, file_size)
        servers = [
            Server("dsi", work, [], dsi=True, dsi_options=args.dsi_option),
            Server("file", work, [], dsi=False),
            Server("file -sync-writes", work, ["-sync-writes"], dsi=False),
        ]
        if args.warm:
            servers.append(Server("dsi warm", work, [], dsi=True, dsi_options=args.dsi_option, warm=args.warm))
        if args.dsi_baseline is not None:
            servers.append(Server("dsi baseline", work, [], dsi=True, dsi_options=args.dsi_option,
                                  package=args.dsi_baseline.resolve()))
        print(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, {load()}; Python "
              f"{sys.version.split()[0]} embedded from {launch.build_info()['executable']}; "
              f"working in {work} ({describe(work)})")

        print(f"\n{format_size(size)} MODE E -p 4 PUT, {args.rounds} rounds, each timed to a trailing sync:")
        walls, cpus = rounds(servers, args.rounds, "put", lambda s: put(s, source))
        gib = size / (1 << 30)
        print(f"  {'storage':<20} {'MB/s (median)':>14} {'s (spread)':>14} {'CPU s/GiB':>10}")
        for s in servers:
            print(f"  {s.name:<20} {size / med(walls[s.name]) / 1e6:14.0f} {spread(walls[s.name]):>14} "
                  f"{med(cpus[s.name]) / gib:10.2f}")
        ratios(walls)
        paired(walls, cpus)
        log = servers[0].log.read_text() if servers[0].log.exists() else ""
        py = [float(x) for x in re.findall(r"([\d.]+) s in Python on Globus data threads", log)]
        paths = sorted(set(re.findall(r"s writing \(([^)]*)\)", log)))
        if py:
            print(f"  dsi: Python on the server's data threads per upload: median {med(py):.2f} s ({spread(py)}); "
                  f"data path: {', '.join(paths)}")
        flush = [float(x) for x in re.findall(r"durable\(\) \d+ times in the durability thread, ([\d.]+) s", log)]
        final = [float(x) for x in re.findall(r"complete\(\) after the last byte ([\d.]+) s", log)]
        if flush and final:
            print(f"  dsi: durable() in the durability thread: median {med(flush):.2f} s ({spread(flush)}); "
                  f"complete() after the last byte: median {med(final):.2f} s ({spread(final)})")

        print(f"\nsession start, {args.logins} sessions each (connect to 230; to the first SIZE reply; "
              "to the 226 of a 1 KiB STOR), ms:")
        tiny = os.urandom(1024)
        for s in [s for s in servers if s.name != "file -sync-writes"]:
            s.ready()
            cpu0 = s.settled_cpu()
            times = []
            for _ in range(args.logins):
                for other in servers:
                    other.ready()
                times.append(session_start(s, tiny))
            cpu = (s.settled_cpu() - cpu0) / args.logins
            cols = list(zip(*times, strict=True))
            print(f"  {s.name:<8} " + "; ".join(
                f"{1000 * med(list(c)):6.1f} ({1000 * min(c):.0f}-{1000 * max(c):.0f})" for c in cols
            ) + f"; CPU per session {1000 * cpu:.0f} ms  ({load()})")
        log = servers[0].log.read_text() if servers[0].log.exists() else ""
        parts = re.findall(r"start-up: Python (\d+) ms, imports (\d+) ms, driver (\d+) ms; process CPU so far (\d+)", log)
        if parts:
            cols2 = list(zip(*[[int(x) for x in p] for p in parts], strict=True))
            print("  dsi sessions, median: Py_InitializeFromConfig {} ms, importing the bridge {} ms, "
                  "opening the driver {} ms; process CPU at login {} ms".format(*(med(list(c)) for c in cols2)))
        exe = os.environ.get("TRANSFERCORE_DSI_PYTHON") or str(launch.build_info()["executable"])
        floor = python_floor(exe, f"posix://{servers[0].dir}")
        print("  the embedded Python alone (CPU of python -c, median): "
              + "; ".join(f"{name} {ms:.0f} ms" for name, ms in floor))

        if args.files:
            # the real server with nothing but a durable 226 (floor_server.py), and without the flushes
            module = floor_server.build(work / "floor-module")
            floor_servers = [Server(name, work, [], dsi=False, floor=(module, durable))
                             for name, durable in floor_server.NAMES.items()]
            servers += floor_servers
        for opts in (args.tree_opts or ["-cc 4 -fast"]) if args.files else []:
            n = args.tree_rounds if args.tree_rounds is not None else args.rounds
            print(f"\n{args.files} files of {format_size(file_size)}, globus-url-copy -r {opts}, "
                  f"{n} rounds, each timed to a trailing sync:")
            seen = servers[0].log.stat().st_size if servers[0].log.exists() else 0
            argv = opts.split()
            floors = [Floor(f"floor: {writers_of(argv)} writers, durable", work, True),
                      Floor(f"floor: {writers_of(argv)} writers, no flush", work, False)]

            def one(s: Server | Floor, argv: list[str] = argv) -> tuple[float, float]:
                if isinstance(s, Floor):
                    return s.tree(tree, argv)
                return put_tree(s, tree=tree, files=args.files, opts=argv)

            twalls, tcpus = rounds([*servers, *floors], n, "tree", one)
            with open(servers[0].log, encoding="utf-8", errors="replace") as fh:
                fh.seek(seen)
                final = [float(x) for x in re.findall(r"complete\(\) after the last byte ([\d.]+) s", fh.read())]
            if final:
                print(f"  dsi: complete() (fsync, rename, directory fsync) per file: median {1000 * med(final):.1f} ms "
                      f"({1000 * min(final):.1f}-{1000 * max(final):.1f}), {sum(final) / n:.2f} s per round "
                      f"summed over the sessions")
            for s in [*servers, *floors]:
                print(f"  {s.name:<30} {args.files / med(twalls[s.name]):8.0f} files/s  {spread(twalls[s.name]):>12} s"
                      f"  CPU {med(tcpus[s.name]):.2f} s")
            ratios(twalls)
            paired(twalls, tcpus)
        print(f"\nend: {load()}")
    finally:
        for s in servers:
            s.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
