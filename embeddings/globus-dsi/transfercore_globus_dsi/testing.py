"""Running the real globus-gridftp-server with the transfercore DSI: for tests, benchmarks and power-loss trials."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from transfercore.ranges import RangeSet
from transfercore.testing.loopback import wait_globus_listening, wait_port
from transfercore.testing.powerloss.loss import lost_bytes
from transfercore.testing.throttle import Throttle

GLOBUS_MISSING = (
    "this test runs the real Globus tools: apt-get install globus-gass-copy-progs globus-gridftp-server-progs"
)


def have_globus() -> bool:
    return bool(shutil.which("globus-url-copy") and (shutil.which("globus-gridftp-server") or os.path.exists("/usr/sbin/globus-gridftp-server")))


def anonymous_args() -> list[str]:
    """Anonymous sessions as the invoking user: the embedded Python and its environment
    must be readable by the account a session runs as (root needs -allow-root)."""
    if os.geteuid() == 0:
        return ["-aa", "-anonymous-user", "root", "-allow-root"]
    return ["-aa", "-anonymous-user", getpass.getuser()]


def loopback_args(port: int) -> list[str]:
    return ["-p", str(port), "-control-interface", "127.0.0.1", "-data-interface", "127.0.0.1", "-c", "/dev/null"]


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


class DsiServer:
    """``transfercore globus-server URL ...`` as a subprocess on 127.0.0.1."""

    def __init__(self, url: str, workdir: Path, *, dsi_options: list[str] | None = None,
                 server_args: list[str] | None = None, port: int | None = None, warm: int = 0) -> None:
        self.url = url
        self.workdir = workdir
        # 0: the server picks its port and says which (a port from free_port() could be taken
        # by another process before the server listens); a restart keeps the one it picked
        self.port = port or 0
        self.log = workdir / "dsi.log"
        self.server_log = workdir / "gridftp.log"
        self.dsi_options = dsi_options or []
        self.server_args = server_args or []
        self.warm = warm
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        cmd = [sys.executable, "-m", "transfercore", "globus-server", "--log", str(self.log)]
        if self.warm:
            cmd += ["--warm", str(self.warm)]
        for opt in self.dsi_options:
            cmd += ["--dsi-option", opt]
        return [
            *cmd, self.url, *loopback_args(self.port), *anonymous_args(),
            "-d", "ERROR", "-l", str(self.server_log), *self.server_args,
        ]

    def start(self) -> DsiServer:
        out_path = self.out = self.workdir / "globus-server.out"
        out = open(out_path, "ab")
        self.proc = subprocess.Popen(self.argv(), stdout=out, stderr=subprocess.STDOUT)
        if self.port:
            wait_port(self.port, self.proc)
        else:
            self.port = wait_globus_listening(out_path, self.proc)
        return self

    def wait_warm(self, timeout: float = 30) -> None:
        """Until ``--warm``'s processes all wait for connections."""
        wait_for(lambda: "warm session processes ready" in self.out.read_text(errors="replace"), timeout,
                 "the warm session processes")

    def sessions(self) -> list[int]:
        assert self.proc is not None
        return children(self.proc.pid)

    def kill_sessions(self) -> int:
        pids = self.sessions()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    def stop(self) -> None:
        if self.proc is None:
            return
        for pid in self.sessions():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def ftp(self, path: str) -> str:
        return f"ftp://127.0.0.1:{self.port}{path}"

    def dsi_log(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def guc(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["globus-url-copy", *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Control:
    """A small FTP control client for what globus-url-copy cannot be told to do (REST by hand)."""

    def __init__(self, port: int, timeout: float = 30) -> None:
        import socket

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.greeting = self.reply()

    def _line(self) -> str:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("control connection closed")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\r\n", 1)
        return raw.decode(errors="replace")

    def reply(self) -> tuple[int, str]:
        first = self._line()
        lines = [first]
        if first[3:4] == "-":
            while not (lines[-1][:3] == first[:3] and lines[-1][3:4] == " "):
                lines.append(self._line())
        return int(first[:3]), "\n".join(lines)

    def cmd(self, text: str) -> tuple[int, str]:
        self.sock.sendall(text.encode() + b"\r\n")
        return self.reply()

    def login(self) -> None:
        assert self.cmd("USER anonymous")[0] == 331
        code, text = self.cmd("PASS x@y")
        assert code == 230, text
        assert self.cmd("TYPE I")[0] == 200

    def pasv(self) -> socket.socket:
        code, text = self.cmd("PASV")
        assert code == 227, text
        nums = [int(n) for n in text[text.index("(") + 1 : text.index(")")].split(",")]
        return socket.create_connection((".".join(map(str, nums[:4])), nums[4] * 256 + nums[5]), timeout=30)

    def until_final(self) -> list[tuple[int, str]]:
        out = []
        while True:
            code, text = self.reply()
            out.append((code, text))
            if code >= 200:
                return out

    def stor(self, path: str, data: bytes, *, alloc: int | None = None, rest: str | None = None) -> list[tuple[int, str]]:
        """MODE S upload; returns every reply from the preliminary to the final one."""
        if alloc is not None:
            assert self.cmd(f"ALLO {alloc}")[0] in (200, 202)
        data_sock = self.pasv()
        if rest is not None:
            code, text = self.cmd(f"REST {rest}")
            assert code == 350, text
        self.sock.sendall(f"STOR {path}\r\n".encode())
        code, text = self.reply()
        replies = [(code, text)]
        if code < 200:
            try:
                data_sock.sendall(data)
            except OSError:
                pass
            data_sock.close()
            replies += self.until_final()
        else:
            data_sock.close()
        return replies

    def stor_mode_e(
        self, path: str, blocks: list[tuple[int, bytes]], *, alloc: int | None = None, rest: str | None = None
    ) -> list[tuple[int, str]]:
        """MODE E upload of ``blocks`` (offset, bytes) on one data connection; every reply
        from the preliminary to the final one."""
        import struct

        assert self.cmd("MODE E")[0] == 200
        if alloc is not None:
            assert self.cmd(f"ALLO {alloc}")[0] in (200, 202)
        data_sock = self.pasv()
        if rest is not None:
            code, text = self.cmd(f"REST {rest}")
            assert code == 350, text
        self.sock.sendall(f"STOR {path}\r\n".encode())
        code, text = self.reply()
        replies = [(code, text)]
        if code < 200:
            try:
                for offset, data in blocks:
                    data_sock.sendall(struct.pack(">BQQ", 0, len(data), offset) + data)
                # EOD on this connection, and EOF: one data connection in all
                data_sock.sendall(struct.pack(">BQQ", 0x08 | 0x40, 0, 1))
            except OSError:
                pass
            data_sock.close()
            replies += self.until_final()
        else:
            data_sock.close()
        return replies

    def close(self) -> None:
        try:
            self.cmd("QUIT")
        except OSError:
            pass
        self.sock.close()


# -- power loss --------------------------------------------------------------------------------

MARKER_LINE = "111 Range Marker "


def upload_until_markers(url: str, source: Path, markers: int, duty: float, timeout: float = 120):  # type: ignore[no-untyped-def]
    """Start a throttled MODE E -p 4 upload; return (client, throttle, marked) once
    ``markers`` 111 markers arrived (the client is still running, stopped or not)."""
    client = subprocess.Popen(
        # small TCP buffers: the stopped client cannot have queued much in the sockets
        ["globus-url-copy", "-vb", "-dbg", "-fast", "-p", "4", "-tcp-bs", "65536", f"file://{source}", url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
    )
    throttle = Throttle(client.pid, duty, period=0.3)
    marked = RangeSet()
    count = 0
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    assert client.stdout is not None
    for line in client.stdout:
        seen.append(line)
        if time.monotonic() > deadline:
            break
        if line.startswith(MARKER_LINE):
            count += 1
            marked = marked | RangeSet.parse(line[len(MARKER_LINE):].strip())
            if count >= markers:
                return client, throttle, marked
        if line.startswith("226 "):
            break
    throttle.close()
    client.kill()
    client.wait()
    raise AssertionError(f"the upload ended or stalled before {markers} 111 markers:\n" + "".join(seen[-30:]))


def stop_client(client: subprocess.Popen[str], throttle: Throttle) -> None:
    throttle.close()
    client.kill()
    client.wait()


def started_with(argument: str) -> list[int]:
    """Processes with ``argument`` among their command-line arguments."""
    want = argument.encode()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                if want in fh.read().split(b"\0"):
                    out.append(int(entry))
        except OSError:
            continue
    return out


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _survivor(directory: Path, name: str) -> Path | None:
    """The final file, else the posix driver's single partial file."""
    if (directory / name).exists():
        return directory / name
    partials = sorted(directory.glob(f".{name}.*.tcpart"))
    return partials[0] if len(partials) == 1 else None


class PowerLossTrial:
    """One upload onto a power-loss volume, the power cut after ``markers`` 111 markers.

    ``kind`` is ``"dsi"`` (the transfercore DSI over the posix driver) or ``"file"``
    (the server's built-in file storage, sessions as ``nobody``).  After :meth:`run`,
    ``marked`` holds what the markers named, ``lost`` how many of those bytes the
    surviving file does not hold, ``survivor`` the surviving file (or ``None``).
    The volume stays mounted and the server running until :meth:`close`, so a
    resume can be tried.
    """

    def __init__(self, kind: str, work: Path, source: Path, *, markers: int = 2, duty: float = 0.005,
                 delay: float = 0.0) -> None:
        from transfercore.testing.powerloss import PowerLossFS

        self.kind = kind
        self.work = work
        self.source = source
        self.markers = markers
        self.duty = duty
        self.delay = delay
        n = len(list(work.glob("trial-*")))
        self.dir = work / f"trial-{n}"
        self.dir.mkdir()
        self.dir.chmod(0o755)
        self.fs = PowerLossFS(self.dir / "backing", self.dir / "mnt")
        self.server: DsiServer | None = None
        self.pidfile = self.dir / "gsrv.pid"
        self.marked = RangeSet()
        self.lost = 0
        self.survivor: Path | None = None
        self.target = Path()

    def run(self) -> PowerLossTrial:
        from transfercore.testing.loopback import start_globus_server

        self.fs.mount()
        self.target = Path(self.fs.mountpoint) / "up"
        self.target.mkdir()
        if self.kind == "file":
            self.target.chmod(0o777)
        _fsync_dir(self.target)
        _fsync_dir(Path(self.fs.mountpoint))
        if self.kind == "dsi":
            self.server = DsiServer(f"posix://{self.target}", self.dir).start()
            url = self.server.ftp("/dst.bin")
        else:
            self.port = start_globus_server(0, self.pidfile, self.dir / "gsrv.log")
            url = f"ftp://127.0.0.1:{self.port}{self.target}/dst.bin"
        client, throttle, self.marked = upload_until_markers(url, self.source, self.markers, self.duty)
        if self.delay:
            time.sleep(self.delay)
        self.fs.crash()  # the power is cut; the volume comes back with what was durable
        stop_client(client, throttle)
        if self.server is not None:
            self.server.kill_sessions()
        self.survivor = _survivor(self.target, "dst.bin")
        self.lost = lost_bytes(self.source, self.survivor, self.marked)
        return self

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        try:
            pid = int(self.pidfile.read_text().split()[0])
            for child in children(pid):
                os.kill(child, signal.SIGKILL)
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError):
            pass
        # A session of the built-in storage can outlive its daemon (reparented, or
        # not yet its child when the daemon was asked): every process started with
        # this trial's pidfile in its arguments is this trial's.
        for other in started_with(str(self.pidfile)):
            try:
                os.kill(other, signal.SIGKILL)
            except OSError:
                pass
        if self.fs.mounted:
            self.fs.crash(remount=False)
