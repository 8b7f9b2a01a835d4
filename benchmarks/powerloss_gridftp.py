"""How many bytes covered by GridFTP restart markers (111) does a power cut lose?

A GridFTP server writes onto a power-loss file system (FUSE, LazyFS
semantics: what was not fsynced is gone after a crash).  ``globus-url-copy
-vb -dbg -fast -p 4`` uploads a file in MODE E; the script records every
``111 Range Marker`` the server sent, cuts the power some time after the
k-th marker, mounts again, and compares the surviving file with the source
over the ranges the markers covered.  Every such byte was promised as
stored; any that differs or is missing was lost.

The client is slowed by stopping and continuing it (it runs a fixed fraction
of each 0.1 s) so the upload lasts long enough for the servers' periodic
markers (every 5 s) to arrive before the cut; over loopback the whole file
would otherwise land in about a second with only the final marker.  The
source stays a regular file, so the client announces its size with ``ALLO``
(``transfercore serve`` sends markers only for uploads of known size).

Servers: the real ``globus-gridftp-server`` (anonymous user mapped to
``nobody``), and ``transfercore serve --anonymous-write`` when installed.
For ``transfercore serve`` the surviving data is the partial file named by
the posix driver's resume record, since it publishes the final name only
when the object is complete.

    python benchmarks/powerloss_gridftp.py                      # 256 MiB, cuts after 1, 2, 3 markers
    python benchmarks/powerloss_gridftp.py --size 64MiB --duty 0.1 --cuts 1,2

Needs root (FUSE mount with allow_other, the anonymous server switching to
nobody), fuse3, mfusepy, globus-gridftp-server-progs, globus-gass-copy-progs.
This is a measurement: it prints figures and never fails on what it finds.
"""

from __future__ import annotations

import argparse
import os
import pwd
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import attrs

from transfercore.ranges import RangeSet
from transfercore.sizes import format_size, parse_size
from transfercore.testing.loopback import free_port, start_globus_server, wait_port
from transfercore.testing.powerloss import PowerLossFS
from transfercore.testing.powerloss.loss import lost_bytes
from transfercore.testing.throttle import Throttle

MARKER = re.compile(r"^111 Range Marker (\S+)")
#: Comparison granularity: a page whose bytes differ counts as lost, clipped to the marked ranges.


@attrs.frozen
class Trial:
    server: str
    cut_after: int
    #: Seconds between the k-th marker and the power cut.
    delay: float
    markers: int
    #: Union of the ranges of every 111 marker received before the cut.
    marked: RangeSet
    #: The client had received 226 (transfer complete) before the cut.
    completed: bool
    file_survived: bool
    lost: int
    seconds: float

    @property
    def lost_fraction(self) -> float:
        return self.lost / self.marked.total() if self.marked else 0.0


def children_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry))
    return out


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class GlobusServer:
    name = "globus-gridftp-server"

    def __init__(self, work: Path, directory: Path) -> None:
        self.port = free_port()
        self.pidfile = work / f"gsrv-{self.port}.pid"
        self.log = work / f"gsrv-{self.port}.log"
        self.directory = directory

    def start(self) -> None:
        start_globus_server(self.port, self.pidfile, self.log)

    def url(self, name: str) -> str:
        return f"ftp://127.0.0.1:{self.port}{self.directory / name}"

    def surviving(self, name: str) -> Path | None:
        path = self.directory / name
        return path if path.exists() else None

    def stop(self) -> None:
        # -S daemonises and forks per session; the pid file names the listener,
        # whose children are the sessions this run opened.
        try:
            pid = int(self.pidfile.read_text())
        except (OSError, ValueError):
            return
        for child in children_of(pid):
            _kill(child)
        _kill(pid)


class TransfercoreServer:
    name = "transfercore serve"

    def __init__(self, work: Path, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.log = open(work / f"tcsrv-{self.port}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "transfercore", "serve", "--root", str(self.directory),
                "--anonymous-write", "--port", str(self.port), "--marker-interval", "5",
            ],
            stdout=self.log,
            stderr=self.log,
        )
        wait_port(self.port)

    def url(self, name: str) -> str:
        return f"ftp://127.0.0.1:{self.port}/{name}"

    def surviving(self, name: str) -> Path | None:
        path = self.directory / name
        if path.exists():
            return path
        partials = sorted(self.directory.glob(f".{name}.*.tcpart"))
        return partials[0] if len(partials) == 1 else None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def one_trial(
    kind: str, source: Path, duty: float, cut_after: int, rng: random.Random, work: Path, *, existing: bool
) -> Trial:
    trial_dir = Path(tempfile.mkdtemp(prefix=f"trial-{cut_after}-", dir=work))
    trial_dir.chmod(0o755)  # the anonymous session (nobody) must reach the mount below it
    fs = PowerLossFS(trial_dir / "backing", trial_dir / "mnt")
    fs.mount()
    server = None
    client = None
    throttle = None
    try:
        # The anonymous Globus session runs as nobody: its directory must be
        # writable by nobody, and durable before the test starts.
        target = Path(fs.mountpoint) / "up"
        target.mkdir()
        target.chmod(0o777)
        if existing:
            # A destination whose name is already durable: what is lost then is the data alone.
            dst = target / "dst.bin"
            with open(dst, "wb") as fh:
                os.fsync(fh.fileno())
            nobody = pwd.getpwnam("nobody")
            os.chown(dst, nobody.pw_uid, nobody.pw_gid)
            fsync_path(dst)
            fsync_dir(target)
        fsync_dir(Path(fs.mountpoint))
        server = GlobusServer(trial_dir, target) if kind == "globus" else TransfercoreServer(trial_dir, target)
        server.start()
        started = time.monotonic()
        client = subprocess.Popen(
            ["globus-url-copy", "-vb", "-dbg", "-fast", "-p", "4", f"file://{source}", server.url("dst.bin")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        assert client.stdout is not None
        throttle = Throttle(client.pid, duty)
        marked = RangeSet()
        markers = 0
        seen: list[str] = []
        completed = False
        for line in client.stdout:
            seen.append(line)
            match = MARKER.match(line.strip())
            if match:
                markers += 1
                marked = marked | RangeSet.parse(match.group(1))
                if markers >= cut_after:
                    break
            if line.startswith("226 "):
                completed = True
                break
        else:
            client.wait()
            raise SystemExit(
                f"{server.name}: the upload ended (status {client.returncode}) before {cut_after} markers:\n"
                + "".join(seen[-30:])
            )
        # The cut lands at a random point before the next periodic marker.
        delay = rng.uniform(0.0, 4.0)
        deadline = time.monotonic() + delay
        reader_done = threading.Event()
        late: list[str] = []

        def drain() -> None:
            assert client is not None and client.stdout is not None
            for line in client.stdout:
                late.append(line)
                if time.monotonic() < deadline:
                    match = MARKER.match(line.strip())
                    if match:
                        late.append(f"#marker {match.group(1)}")
                    if line.startswith("226 "):
                        late.append("#complete")
            reader_done.set()

        drainer = threading.Thread(target=drain, daemon=True)
        drainer.start()
        time.sleep(max(0.0, deadline - time.monotonic()))
        # Markers that arrived while waiting were received before the cut too.
        for entry in list(late):
            if entry.startswith("#marker "):
                markers += 1
                marked = marked | RangeSet.parse(entry.split(" ", 1)[1])
            completed = completed or entry == "#complete"
        fs.crash()
        elapsed = time.monotonic() - started
        throttle.close()
        client.kill()
        client.wait()
        drainer.join(5)
        survivor = server.surviving("dst.bin")
        lost = lost_bytes(source, survivor, marked)
        name = server.name + (" (file existed)" if existing else "")
        return Trial(name, cut_after, round(delay, 2), markers, marked, completed, survivor is not None, lost, elapsed)
    finally:
        if client is not None and client.poll() is None:
            client.kill()
            client.wait()
        if throttle is not None:
            throttle.close()
        if server is not None:
            server.stop()
        if fs.mounted:
            fs.crash(remount=False)
        shutil.rmtree(trial_dir, ignore_errors=True)


def make_source(path: Path, size: int, seed: int) -> None:
    rng = random.Random(seed)
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, 8 << 20)
            fh.write(rng.randbytes(n))
            left -= n


def serve_available() -> bool:
    result = subprocess.run(
        [sys.executable, "-m", "transfercore", "serve", "--help"], capture_output=True, text=True
    )
    return result.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="256MiB", help="file size (default 256MiB)")
    parser.add_argument("--duty", type=float, default=0.01,
                        help="fraction of the time the client runs (default 0.01: the upload lasts several markers)")
    parser.add_argument("--cuts", default="1,2,3", help="cut the power after this many markers, one trial each")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the data and of the cut delays")
    parser.add_argument("--servers", default="globus,transfercore", help="globus, transfercore, or both")
    parser.add_argument("--existing", action="store_true",
                        help="also upload with globus-gridftp-server onto a destination file created and fsynced "
                             "beforehand, to separate lost data from a lost directory entry")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root: the FUSE mount uses allow_other and the anonymous server switches to nobody")
        return 2
    size = parse_size(args.size, what="--size")
    cuts = [int(c) for c in args.cuts.split(",") if c]
    kinds = [k.strip() for k in args.servers.split(",") if k.strip()]
    if "transfercore" in kinds and not serve_available():
        print("transfercore serve is not installed: measuring globus-gridftp-server only")
        kinds.remove("transfercore")
    # The work directory sits outside any per-user temp dir so nobody can traverse it.
    work = Path(tempfile.mkdtemp(prefix="powerloss-gridftp-"))
    os.chmod(work, 0o755)
    try:
        source = work / "source.bin"
        make_source(source, size, args.seed)
        print(f"{format_size(size)} MODE E PUT (-fast -p 4), client running {100 * args.duty:.0f}% of the time, "
              f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
        print(f"{'server':<38} {'cut after':>9} {'delay s':>7} {'111s':>5} {'marked':>10} "
              f"{'lost':>10} {'lost %':>7} {'226':>4} {'file kept':>9}")
        trials = []
        runs = [(kind, False) for kind in kinds]
        if args.existing and "globus" in kinds:
            runs.insert(1, ("globus", True))
        for kind, existing in runs:
            rng = random.Random(args.seed)
            for cut in cuts:
                trial = one_trial(kind, source, args.duty, cut, rng, work, existing=existing)
                trials.append(trial)
                print(f"{trial.server:<38} {trial.cut_after:>9} {trial.delay:>7} {trial.markers:>5} "
                      f"{format_size(trial.marked.total()):>10} {format_size(trial.lost):>10} "
                      f"{100 * trial.lost_fraction:>6.1f}% {'yes' if trial.completed else 'no':>4} "
                      f"{'yes' if trial.file_survived else 'no':>9}",
                      flush=True)
        for kind in dict.fromkeys(t.server for t in trials):
            mine = [t for t in trials if t.server == kind]
            marked = sum(t.marked.total() for t in mine)
            lost = sum(t.lost for t in mine)
            print(f"{kind}: {format_size(lost)} of {format_size(marked)} marked bytes lost over "
                  f"{len(mine)} power cuts ({100 * lost / marked if marked else 0:.1f}%)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
