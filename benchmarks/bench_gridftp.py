"""``transfercore serve`` against the real globus-gridftp-server, side by side, timed to durability.

Cases (``--cases``, comma-separated):

* ``stream`` and ``modeE``: PUT and GET of one file, ``--root`` (posix);
* ``hpss``: MODE E ``-p 4 -fast`` PUT into ``serve --driver hpss://`` (the
  emulator), against the real server storing into its own file system;
* ``tree``: a tree of ``--files`` files of 0-256 KiB (empty files and
  directories included) with ``-r -cd -cc 4 -fast``, into posix and into
  hpss (``--servers``), against the real server;
* ``tree-pp``: the same with command pipelining (``-pp``);
  every tree case also times, in the same rounds, the floor a durable ``226`` per
  file sets on this file system (``floor, durable``: four writers, each file
  created, written, flushed, renamed and its directory flushed, no server;
  :mod:`durable_floor`) and the same without the flushes (``floor, no flush``);
  and the real server with nothing but a durable ``226`` (``server floor,
  durable``: a storage module in C that flushes each file, renames it and
  flushes its directory before the ``226``; :mod:`floor_server`), and the same
  module without the flushes (``server floor, no flush``). The first floor
  leaves the server out; the second keeps it, and with it the flushes in series
  with the server's own work a file, since each session waits for its ``226``;
* ``tree-3pt``: the same tree as a ``-pp`` third-party transfer, the real
  server sending it to each server (itself included);
* ``gsi``: ``gsiftp://`` MODE E ``-p 4 -fast`` PUT with DCAU (the default) and
  with ``-dcpriv``, both servers authenticating a ``grid-proxy-init`` proxy
  of a throw-away test CA, the real server configured the same (host
  certificate, CA directory, grid-mapfile).

Both servers run on loopback in the same run; the client is globus-url-copy.
Every timing includes a trailing ``sync`` so a server that leaves data in
the page cache at ``226`` pays for it, as ``transfercore serve`` already has
before its ``226``.  The servers take turns within each repeat (alternating),
so drift in the machine's load hits both alike; medians and the spread
(min-max) are printed, with each server's CPU time (user + system; for the
real server the children it forks per session) and peak resident memory
(``VmHWM``; for the real server the largest of its session processes).
The tree cases also print each of our servers against the real server with
a durable ``226`` (``/ server floor, durable``): how far it is from what the
promise allows, whatever runs the storage.  It says which file system it
works on; ``--fs ext4`` (or ``xfs``) puts everything on a new one in a
loop-mounted image (:mod:`scratchfs`; root needed): a root ext4 without a
journal makes every round's files scan past the inodes the last round
freed, in every server alike.

    python benchmarks/bench_gridftp.py --cases hpss,tree --size 1GiB --files 1000 --repeat 3
    python benchmarks/bench_gridftp.py --cases tree,tree-pp,tree-3pt --servers transfercore --repeat 5 --fs ext4
    python benchmarks/bench_gridftp.py --cases tree,tree-pp,tree-3pt --servers transfercore --repeat 3
    python benchmarks/bench_gridftp.py --cases gsi --size 1GiB --repeat 3
    python benchmarks/bench_gridftp.py --cases tree,tree-pp --servers transfercore --before ../old-checkout
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
import threading
import time
from pathlib import Path

import floor_server
from durable_floor import copy_tree
from scratchfs import KINDS, describe, scratch_fs

from transfercore.sizes import parse_size
from transfercore.testing.gsi_pki import GridPKI
from transfercore.testing.loopback import free_port, start_globus_server, wait_port

#: Not servers, in the tree cases' rounds: the floor a durable ``226`` per file sets on this
#: file system (:mod:`durable_floor`), and the same without the flushes (what storage that
#: promises nothing at its reply pays); the value says whether each file is flushed.
FLOORS = {"floor, durable": True, "floor, no flush": False}


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


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int, children: bool) -> float:
    """User + system time of ``pid``, or of its children (reaped, and alive: ``serve --workers``), in seconds."""
    fields = _stat(pid)
    # Fields after the command name start at field 3 (state): utime is 14, cutime 16.
    if not children:
        return (int(fields[11]) + int(fields[12])) / TICK
    ticks = int(fields[13]) + int(fields[14])
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                kid = _stat(int(name))
            except (OSError, IndexError):
                continue
            if int(kid[1]) == pid:
                ticks += int(kid[11]) + int(kid[12])
    return ticks / TICK


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


class PeakRss:
    """Samples the peak RSS (VmHWM) of a process, or of its children, while a run goes."""

    def __init__(self, pid: int, children: bool) -> None:
        self.pid = pid
        self.children = children
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _hwm(self, pid: int) -> int:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def _kids(self) -> list[int]:
        out = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/stat") as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == self.pid:
                            out.append(int(name))
                except (OSError, ValueError, IndexError):
                    pass
        return out

    def _sample(self) -> None:
        pids = self._kids() if self.children else [self.pid]
        for pid in pids:
            self.peak_kib = max(self.peak_kib, self._hwm(pid))

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sample()
        self._stop.set()
        self._thread.join()


def make_tree(base: Path, files: int) -> int:
    """``files`` files in nested directories, a few empty ones and empty directories; returns bytes."""
    import random

    rnd = random.Random(11)
    total = 0
    blob = os.urandom(1 << 20)
    for i in range(files):
        d = base / f"d{i % 20}" / ("s" if i % 4 == 0 else "")
        d.mkdir(parents=True, exist_ok=True)
        n = 0 if i % 50 == 0 else rnd.randrange(1, 256 * 1024)
        with open(d / f"f{i}.bin", "wb") as f:
            f.write(blob[:n])
        total += n
    (base / "empty" / "inner").mkdir(parents=True, exist_ok=True)
    os.sync()
    return total


class Servers:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.procs: list[subprocess.Popen[bytes]] = []
        self.endpoints: dict[str, tuple[str, Path, int, bool]] = {}
        self.pidfile = work / "real.pid"
        self.pidfiles = [self.pidfile]

    def ours(
        self, name: str, args: list[str], root: Path, env: dict[str, str] | None = None, scheme: str = "ftp",
        *, children: bool = False, cwd: Path | None = None,
    ) -> None:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "transfercore", "serve", "--port", str(port), "--anonymous-write", *args],
            stderr=open(self.work / f"{name}.log", "wb"),
            env=os.environ | (env or {}),
            cwd=cwd,
        )
        self.procs.append(proc)
        wait_port(port, proc)
        # with --workers the sessions run in the supervisor's children: their CPU and memory count
        self.endpoints[name] = (f"{scheme}://127.0.0.1:{port}", root, proc.pid, children)

    def real(self, root: Path) -> None:
        port = free_port()
        start_globus_server(port, self.pidfile, self.work / "real.log")
        pid = int(self.pidfile.read_text().split()[0])
        self.endpoints["globus"] = (f"ftp://127.0.0.1:{port}{root}", root, pid, True)

    def floor(self, name: str, root: Path, module: Path, durable: bool) -> None:
        """The real server with nothing but a durable ``226`` (:mod:`floor_server`), serving ``root``
        as ``/``; its sessions run as ``nobody``, as the real server's do."""
        port = free_port()
        argv, env = floor_server.launch(
            shutil.which("globus-gridftp-server") or "globus-gridftp-server", module, root, durable,
            ["-aa", "-anonymous-user", "nobody", "-p", str(port), "-control-interface", "127.0.0.1",
             "-data-interface", "127.0.0.1", "-d", "ERROR", "-l", str(self.work / f"{root.name}.log"), "-c", "/dev/null"],
        )
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        wait_port(port, proc)
        self.endpoints[name] = (f"ftp://127.0.0.1:{port}", root, proc.pid, True)

    def real_gsi(self, root: Path, pki: GridPKI) -> None:
        port = free_port()
        pidfile = self.work / "real-gsi.pid"
        self.pidfiles.append(pidfile)
        pki.start_real_server(port, pidfile, self.work / "real-gsi.log")
        wait_port(port)
        pid = int(pidfile.read_text().split()[0])
        self.endpoints["globus-gsi"] = (f"gsiftp://127.0.0.1:{port}{root}", root, pid, True)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
            proc.wait(10)
        for pidfile in self.pidfiles:
            try:
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)
            except (OSError, ValueError):
                pass


def run_case(
    label: str, servers: Servers, names: list[str], repeat: int, one_run: object, amount: int, unit: str
) -> dict[str, dict[str, float]]:
    """Alternate the servers ``repeat`` times; print and return medians and spreads."""
    runs: dict[str, list[tuple[float, float, int]]] = {n: [] for n in names}
    for _ in range(repeat):
        for name in names:
            base, root, pid, children = servers.endpoints[name]
            wall, cpu, rss = one_run(name, base, root, pid, children)  # type: ignore[operator]
            runs[name].append((wall, cpu, rss))
    out = {}
    for name in names:
        walls = [w for w, _, _ in runs[name]]
        med = statistics.median(walls)
        rate = amount / med / 1e6 if unit == "MB/s" else med
        out[name] = {
            "median": med,
            "rate": rate,
            "min": min(walls),
            "max": max(walls),
            "cpu": statistics.median(c for _, c, _ in runs[name]),
            "rss": max(r for _, _, r in runs[name]) / 1024,
        }
        shown = f"{rate:8.1f} MB/s" if unit == "MB/s" else f"{med:8.2f} s"
        print(
            f"{label:12} {name:18} {shown}  (median of {repeat}; {min(walls):.2f}-{max(walls):.2f} s)  "
            f"CPU {out[name]['cpu']:6.2f} s  peak RSS {out[name]['rss']:6.0f} MiB",
            flush=True,
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="hpss,tree", help="stream, modeE, hpss, tree, gsi (default hpss,tree)")
    ap.add_argument("--size", default="1GiB", help="file size (default 1GiB)")
    ap.add_argument("--files", type=int, default=1000, help="files in the tree case (default 1000)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per server and case; medians printed")
    ap.add_argument("--parallel", type=int, default=4, help="MODE E data connections (default 4)")
    ap.add_argument("--dir", help="working directory (default: a new temporary one)")
    ap.add_argument("--servers", default="transfercore,transfercore-hpss",
                    help="our servers in the tree cases (default transfercore,transfercore-hpss; "
                         "a suffix -wN runs one with --workers N, e.g. transfercore-w2; -asyncio one on asyncio's "
                         "own event loop, e.g. transfercore-asyncio; -iN the hpss driver with N segments in "
                         "flight, e.g. transfercore-hpss-i2; -wb0 the emulator's movers without write-behind, "
                         "e.g. transfercore-hpss-wb0; -cN kept on CPU N (--cpu-affinity N; -coff: off), "
                         "e.g. transfercore-c1; the hpss case runs the transfercore-hpss ones)")
    ap.add_argument("--before", metavar="CHECKOUT",
                    help="a checkout of other code (git worktree or archive): its serve --root runs as "
                    "'before' in the tree cases, in the same alternation, and with a transfercore-hpss "
                    "server its --driver hpss:// as 'before-hpss' (build its extension in place first)")
    ap.add_argument("--fs", choices=KINDS,
                    help="everything on a new file system of this kind in a loop-mounted image (root needed; "
                         "see benchmarks/scratchfs.py)")
    ap.add_argument("--fs-size", default="8GiB", help="the image's size (default 8GiB)")
    args = ap.parse_args()
    for tool in ("globus-url-copy", "globus-gridftp-server"):
        if not shutil.which(tool):
            print(f"{tool} is not installed (Debian: globus-gass-copy-progs, globus-gridftp-server-progs)")
            return 2
    scratch = Path(args.dir or tempfile.mkdtemp(prefix="tc-bench-gridftp-"))
    scratch.mkdir(parents=True, exist_ok=True)
    scratch.chmod(0o755)  # the real server's sessions run as 'nobody'
    try:
        with scratch_fs(scratch, args.fs, parse_size(args.fs_size), "bench_gridftp") as work:
            return bench(work, args)
    finally:
        if not args.dir:
            shutil.rmtree(scratch, ignore_errors=True)


def bench(work: Path, args: argparse.Namespace) -> int:
    print(f"bench_gridftp: {os.cpu_count()} CPUs, working in {work} ({describe(work)})", flush=True)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    size = parse_size(args.size)
    work.chmod(0o755)
    ours_root, real_root, emu = work / "ours", work / "real", work / "emu"
    for d in (ours_root, real_root, emu):
        d.mkdir(exist_ok=True)
    real_root.chmod(0o777)  # the real server writes as 'nobody'
    src = work / "src.bin"
    if any(c in cases for c in ("stream", "modeE", "hpss", "gsi")):
        print(f"making a {size} byte source file ...", flush=True)
        make_source(src, size)
        src.chmod(0o644)
    tree = work / "tree"
    tree_bytes = 0
    if any(c.startswith("tree") for c in cases):
        print(f"making a tree of {args.files} files ...", flush=True)
        tree_bytes = make_tree(tree, args.files)

    servers = Servers(work)
    servers.ours("transfercore", ["--root", str(ours_root)], ours_root)
    servers.ours(
        "transfercore-hpss",
        ["--driver", "hpss:///?segment=64MiB", "--spool-dir", str(work / "spool")],
        emu,
        {"HPSS_EMU_ROOT": str(emu)},
    )
    for name in args.servers.split(","):
        # "transfercore-w2", "transfercore-hpss-w4": the same server with --workers N;
        # "transfercore-asyncio": on asyncio's own event loop instead of uvloop;
        # "transfercore-hpss-i2": the hpss driver executing 2 segments at once (inflight=2);
        # "transfercore-hpss-wb0": the emulator's movers without write-behind (HPSS_EMU_WRITE_BEHIND=0).
        # "transfercore-c1": the same server kept on CPU 1 (--cpu-affinity 1; -coff: off);
        # Suffixes go together in that order from the end: transfercore-hpss-i2-w2-asyncio-wb0-c1.
        base, extra, query = name, [], ""
        emu_env: dict[str, str] = {}
        stem, _, cpus = base.rpartition("-c")
        if stem.startswith("transfercore") and (cpus.isdigit() or cpus == "off"):
            base, extra = stem, ["--cpu-affinity", cpus]
        if base.endswith("-wb0"):
            base, emu_env = base.removesuffix("-wb0"), {"HPSS_EMU_WRITE_BEHIND": "0"}
        if base.endswith("-asyncio"):
            base, extra = base.removesuffix("-asyncio"), ["--event-loop", "asyncio"]
        stem, _, count = base.rpartition("-w")
        if stem.startswith("transfercore") and count.isdigit():
            base, extra = stem, [*extra, "--workers", count]
        stem, _, count = base.rpartition("-i")
        if stem == "transfercore-hpss" and count.isdigit():
            base, query = stem, f"&inflight={count}"
        if (extra or query or emu_env) and base in ("transfercore", "transfercore-hpss"):
            where = work / name
            where.mkdir(exist_ok=True)
            store = (["--root", str(where)] if base == "transfercore"
                     else ["--driver", f"hpss:///?segment=64MiB{query}", "--spool-dir", str(work / f"spool-{name}")])
            env = {"HPSS_EMU_ROOT": str(where), **emu_env} if base == "transfercore-hpss" else None
            servers.ours(name, [*store, *extra], where, env, children="--workers" in extra)
    servers.real(real_root)
    if any(c.startswith("tree") for c in cases):
        module = floor_server.build(work / "floor-module")
        for name, durable in floor_server.NAMES.items():
            root = work / name.replace(" ", "-").replace(",", "")
            root.mkdir(exist_ok=True)
            root.chmod(0o777)  # its sessions write as 'nobody'
            servers.floor(name, root, module, durable)
    if args.before:
        before_root = work / "before"
        before_root.mkdir(exist_ok=True)
        code = Path(args.before).resolve()
        # started in the other checkout: `python -m` puts the working directory first on the
        # path, so from this one it would import this code whatever PYTHONPATH says
        path = os.pathsep.join([str(code), str(code / "drivers" / "posix"), str(code / "drivers" / "hpss")])
        servers.ours("before", ["--root", str(before_root)], before_root, {"PYTHONPATH": path}, cwd=code)
        if any(n.startswith("transfercore-hpss") for n in args.servers.split(",")):
            # the other checkout's hpss driver and emulator: build its extension there first
            # (python setup.py build_ext --inplace in CHECKOUT/drivers/hpss)
            before_emu = work / "before-hpss"
            before_emu.mkdir(exist_ok=True)
            servers.ours("before-hpss",
                         ["--driver", "hpss:///?segment=64MiB", "--spool-dir", str(work / "spool-before-hpss")],
                         before_emu, {"PYTHONPATH": path, "HPSS_EMU_ROOT": str(before_emu)}, cwd=code)
    if "gsi" in cases:
        grid = work / "grid"
        grid.mkdir(exist_ok=True)
        grid.chmod(0o755)  # the real server reads the CA directory as nobody
        pki = GridPKI.make(grid)
        os.environ.update(pki.env(pki.grid_proxy_init(grid / "x509up", valid="8:00")))
        gsi_args = ["--host-cert", str(pki.host_cert), "--host-key", str(pki.host_key),
                    "--ca-dir", str(pki.ca_dir), "--gridmap", str(pki.gridmap)]
        servers.ours("transfercore-gsi", ["--root", str(ours_root), *gsi_args], ours_root, scheme="gsiftp")
        servers.real_gsi(real_root, pki)
    summary: list[str] = []

    def put(flags: list[str], name: str, base: str, root: Path, pid: int, children: bool):  # noqa: ANN202
        dest = root / "dst.bin"
        if dest.exists():
            dest.unlink()
        os.sync()
        with PeakRss(pid, children) as rss:
            wall, cpu = timed(["globus-url-copy", *flags, f"file://{src}", f"{base}/dst.bin"], pid, children)
        if os.path.getsize(dest) != size:
            raise SystemExit(f"{name}: PUT stored a wrong size")
        return wall, cpu, rss.peak_kib

    def get(flags: list[str], name: str, base: str, root: Path, pid: int, children: bool):  # noqa: ANN202
        back = work / "back.bin"
        if back.exists():
            back.unlink()
        os.sync()
        with PeakRss(pid, children) as rss:
            wall, cpu = timed(["globus-url-copy", *flags, f"{base}/dst.bin", f"file://{back}"], pid, children)
        if os.path.getsize(back) != size:
            raise SystemExit(f"{name}: GET returned a wrong size")
        return wall, cpu, rss.peak_kib

    def put_tree(  # noqa: ANN202
        flags: list[str], name: str, base: str, root: Path, pid: int, children: bool, third_party: bool = False
    ):
        if name in FLOORS:
            # not a server: the floor a durable 226 per file sets here, as many writers as -cc sessions
            wall, cpu = copy_tree(tree, root / "t", 4, FLOORS[name])
            return wall, cpu, 0
        dest = root / "t"
        if dest.exists():
            shutil.rmtree(dest)
        os.sync()
        # third party: the real server reads the tree and sends it to the destination server
        real_url = servers.endpoints["globus"][0]  # ftp://host:port followed by the real server's root
        source = f"{real_url[: -len(str(real_root))]}{tree}/" if third_party else f"file://{tree}/"
        with PeakRss(pid, children) as rss:
            wall, cpu = timed(
                ["globus-url-copy", "-r", "-cd", "-cc", "4", "-fast", *flags, source, f"{base}/t/"],
                pid,
                children,
            )
        if subprocess.run(["diff", "-rq", str(tree), str(dest)], capture_output=True).returncode != 0:
            raise SystemExit(f"{name}: the tree arrived different")
        return wall, cpu, rss.peak_kib

    def ratio(label: str, res: dict[str, dict[str, float]], ours: str, rate: bool, ref: str = "globus") -> None:
        o, g = res[ours], res[ref]
        speed = o["rate"] / g["rate"] if rate else g["median"] / o["median"]
        summary.append(
            f"{label:14} {ours} / {ref}: {speed:.2f}x speed, server CPU {o['cpu']:.2f} s vs {g['cpu']:.2f} s, "
            f"peak RSS {o['rss']:.0f} MiB vs {g['rss']:.0f} MiB"
        )

    try:
        par = ["-fast", "-p", str(args.parallel)]
        for case in cases:
            if case in ("stream", "modeE"):
                flags = [] if case == "stream" else par
                for op, fn in (("PUT", put), ("GET", get)):
                    res = run_case(
                        f"{case} {op}", servers, ["transfercore", "globus"], args.repeat,
                        lambda *a, fn=fn, flags=flags: fn(flags, *a), size, "MB/s",
                    )
                    ratio(f"{case} {op}", res, "transfercore", True)
            elif case == "hpss":
                hpss = [n for n in args.servers.split(",") if n.startswith("transfercore-hpss")] or ["transfercore-hpss"]
                if "before-hpss" in servers.endpoints:
                    hpss.append("before-hpss")
                res = run_case(
                    f"hpss PUT -p{args.parallel}", servers, [*hpss, "globus"], args.repeat,
                    lambda *a: put(par, *a), size, "MB/s",
                )
                for name in hpss:
                    ratio(f"PUT -p{args.parallel}", res, name, True)
            elif case in ("tree", "tree-pp", "tree-3pt"):
                ours = [n for n in args.servers.split(",") if n]
                if args.before:
                    ours += [n for n in ("before", "before-hpss") if n in servers.endpoints]
                flags = [] if case == "tree" else ["-pp"]
                for floor in FLOORS:
                    servers.endpoints.setdefault(floor, ("", work / floor.replace(" ", "-").replace(",", ""),
                                                         os.getpid(), False))
                res = run_case(
                    f"{case} {args.files}", servers, [*ours, "globus", *floor_server.NAMES, *FLOORS], args.repeat,
                    lambda *a, flags=flags, third=case == "tree-3pt": put_tree(flags, *a, third_party=third),
                    tree_bytes, "s",
                )
                for name in [*ours, *floor_server.NAMES, *FLOORS]:
                    ratio(f"{case} {args.files}", res, name, False)
                for name in ours:
                    # how far from what the real server itself does with a durable 226
                    ratio(f"{case} {args.files}", res, name, False, floor_server.DURABLE)
            elif case == "gsi":
                for label, flags in ((f"gsi PUT -p{args.parallel}", par), ("gsi PUT -dcpriv", [*par, "-dcpriv"])):
                    res = run_case(
                        label, servers, ["transfercore-gsi", "globus-gsi"], args.repeat,
                        lambda *a, flags=flags: put(flags, *a), size, "MB/s",
                    )
                    ratio(label, res, "transfercore-gsi", True, "globus-gsi")
            else:
                raise SystemExit(f"unknown case {case!r}")
    finally:
        servers.stop()
    print()
    print(f"medians of {args.repeat}, servers alternating, each timing including a trailing sync")
    for line in summary:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
