"""``transfercore serve-http`` against ``@tus/server`` with ``@tus/file-store``, side by side, timed to durability.

Cases (``--cases``, comma-separated):

* ``single``: one upload of ``--size`` (default 1 GiB) in one ``PATCH``;
* ``many``: ``--count`` (default 200) uploads of ``--each`` (default 1 MiB)
  at once, each on its own connection (``POST`` to create, one ``PATCH``).

Both servers listen on 127.0.0.1 and write into a directory of the same file
system; the client is this script (tus 1.0.0 over raw HTTP/1.1 with asyncio,
so both servers see the same requests).  Every timing ends with a ``sync``:
a server that acknowledges bytes still in the page cache pays for writing
them there, as ``serve-http`` already has before it reports an offset.  The
servers take turns within each repeat (the order swapped every repeat), so
drift in the machine's load hits both alike; medians and the spread
(min-max) are printed, with each server's CPU time (user + system) per GiB
stored and the load average around the run.

The reference server is ``tests/http/node`` (``npm ci --prefix tests/http/node``).

    python benchmarks/bench_http.py --repeat 5
    python benchmarks/bench_http.py --cases many --count 200 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

from transfercore.sizes import parse_size
from transfercore.testing.loopback import free_port, wait_port

NODE_DIR = Path(__file__).resolve().parent.parent / "tests" / "http" / "node"
TICK = os.sysconf("SC_CLK_TCK")
GiB = 1 << 30
BLOCK = 1 << 20


def cpu_seconds(pid: int) -> float:
    """User + system time of ``pid`` in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def make_source(path: Path, size: int) -> None:
    block = os.urandom(8 << 20)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n


class Server:
    def __init__(self, name: str, cmd: Callable[[int], list[str]], directory: Path, log: Path) -> None:
        self.name = name
        self.cmd = cmd
        self.directory = directory
        self.log = log
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.cmd(self.port), stdout=log, stderr=log)
        wait_port(self.port, self.proc, timeout=60)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def clear(self) -> None:
        """Remove what earlier rounds stored, and let the disk settle, outside the timed part."""
        for entry in self.directory.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        subprocess.run(["sync"], check=True)


# -- a tus client on asyncio streams ----------------------------------------------------


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: str,
                   body: Callable[[asyncio.StreamWriter], Awaitable[None]] | None = None,
                   ) -> tuple[int, dict[str, str]]:
    writer.write(head.encode("latin-1"))
    if body is not None:
        await body(writer)
    await writer.drain()
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", ""):
        while size := int((await reader.readline()).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readline()
    elif length := int(headers.get("content-length", "0")):
        await reader.readexactly(length)
    return status, headers


async def upload(port: int, src: Path, name: str, size: int) -> None:
    """Create an upload of ``src`` and send it in one ``PATCH``; fail unless every byte is acknowledged."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        meta = base64.b64encode(name.encode()).decode()
        status, headers = await _request(reader, writer, (
            "POST /files/ HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n"
            f"Upload-Length: {size}\r\nUpload-Metadata: filename {meta}\r\nContent-Length: 0\r\n\r\n"))
        if status != 201:
            raise RuntimeError(f"creation answered {status}")
        location = urlsplit(headers["location"]).path

        async def send_file(w: asyncio.StreamWriter) -> None:
            with open(src, "rb") as f:
                while block := f.read(BLOCK):
                    w.write(block)
                    await w.drain()

        status, headers = await _request(reader, writer, (
            f"PATCH {location} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
            f"Content-Type: application/offset+octet-stream\r\nContent-Length: {size}\r\n\r\n"), send_file)
        if status != 204 or int(headers.get("upload-offset", -1)) != size:
            raise RuntimeError(f"PATCH answered {status} with Upload-Offset {headers.get('upload-offset')}")
    finally:
        writer.close()


def timed(server: Server, uploads: list[tuple[Path, str, int]]) -> tuple[float, float]:
    """Seconds until every upload is acknowledged and synced, and the server's CPU seconds meanwhile."""
    assert server.proc is not None
    server.clear()
    cpu0 = cpu_seconds(server.proc.pid)
    t0 = time.perf_counter()

    async def all_of() -> None:
        await asyncio.gather(*(upload(server.port, src, name, size) for src, name, size in uploads))

    asyncio.run(all_of())
    subprocess.run(["sync"], check=True)
    elapsed = time.perf_counter() - t0
    return elapsed, cpu_seconds(server.proc.pid) - cpu0


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="single,many")
    ap.add_argument("--size", default="1GiB", help="the single upload's size")
    ap.add_argument("--count", type=int, default=200, help="uploads at once in 'many'")
    ap.add_argument("--each", default="1MiB", help="size of each upload in 'many'")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sync-every", default="16M", help="serve-http --sync-every")
    ap.add_argument("--dir", help="where servers store (default: a temporary directory)")
    ap.add_argument("--only", choices=("transfercore", "tus"), help="run one server (for profiling)")
    ap.add_argument("--with-uvicorn", action="store_true",
                    help="also run serve-http under uvicorn (--http-server uvicorn) beside its own server")
    ap.add_argument("--with-one-core", action="store_true",
                    help="also run serve-http with --cpu-affinity auto (one core of a machine of at most 2) "
                    "beside it")
    args = ap.parse_args()
    if not (NODE_DIR / "node_modules" / "@tus" / "server").is_dir() and args.only != "transfercore":
        print(f"needs @tus/server: npm ci --prefix {NODE_DIR}", file=sys.stderr)
        return 2
    size = parse_size(args.size, what="--size", minimum=1)
    each = parse_size(args.each, what="--each", minimum=1)
    work = Path(tempfile.mkdtemp(prefix="bench-http-", dir=args.dir))
    servers: list[Server] = []
    try:
        big, small = work / "big.bin", work / "small.bin"
        cases = args.cases.split(",")
        if "single" in cases:
            make_source(big, size)
        if "many" in cases:
            make_source(small, each)
        (work / "tus").mkdir()
        def ours(name: str, key: str, *extra: str) -> Server:
            """serve-http storing into work/KEY (its state beside it), with ``extra`` options."""
            (work / key).mkdir(exist_ok=True)
            (work / f"{key}-state").mkdir(exist_ok=True)
            return Server(name, lambda port: [
                sys.executable, "-m", "transfercore", "serve-http", "--root", str(work / key), "--port", str(port),
                "--state-dir", str(work / f"{key}-state"), "--max-uploads", str(max(64, args.count + 8)),
                "--sync-every", args.sync_every, *extra], work / key, work / f"{key}.log").start()

        if args.only != "tus":
            servers.append(ours("transfercore", "tc"))
        if args.with_uvicorn and args.only != "tus":
            servers.append(ours("serve-http (uvicorn)", "uv", "--http-server", "uvicorn"))
        if args.with_one_core and args.only != "tus":
            servers.append(ours("serve-http, one core", "one", "--cpu-affinity", "auto"))
        if args.only != "transfercore":
            servers.append(Server("@tus/server", lambda port: [
                "node", str(NODE_DIR / "tus-server.mjs"), str(work / "tus"), str(port)], work / "tus",
                work / "tus.log").start())
        print(f"load average before: {loadavg()}  ({os.cpu_count()} CPUs)")
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        plans = {
            "single": [(big, "big.bin", size)],
            "many": [(small, f"f{i:04d}.bin", each) for i in range(args.count)],
        }
        for r in range(args.repeat):
            order = servers if r % 2 == 0 else servers[::-1]
            for case in cases:
                for server in order:
                    result = timed(server, plans[case])
                    results.setdefault((case, server.name), []).append(result)
                    print(f"  round {r + 1} {case:6s} {server.name:20s} {result[0]:7.2f} s  cpu {result[1]:6.2f} s"
                          f"  load {loadavg()}", flush=True)
        print(f"load average after: {loadavg()}")
        print("\n| case | server | seconds (median, min-max) | MiB/s | server CPU s per GiB |")
        print("| --- | --- | --- | --- | --- |")
        for case in cases:
            moved = size if case == "single" else each * args.count
            for server in servers:
                runs = results[(case, server.name)]
                secs = [s for s, _ in runs]
                cpus = [c for _, c in runs]
                med = statistics.median(secs)
                label = f"1 x {args.size}" if case == "single" else f"{args.count} x {args.each} at once"
                print(f"| {label} | {server.name} | {med:.2f} ({min(secs):.2f}-{max(secs):.2f}) | "
                      f"{moved / med / (1 << 20):.0f} | {statistics.median(cpus) / (moved / GiB):.2f} |")
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
