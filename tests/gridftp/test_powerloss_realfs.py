"""A power cut during a many-file GridFTP session into ``serve --root`` on ext4 and xfs.

``serve`` completes the uploads of its sessions in groups (one ``syncfs`` or
a batch of syncs, then each directory once) and answers each ``226`` only
after its group.  The destination here is a real kernel file system on a
loop device over the FUSE power-loss volume
(:mod:`transfercore.testing.powerloss.realfs`): after the cut only what the
file system flushed to its "disk" is there, journal replayed.  Every file
the real ``globus-url-copy`` was answered ``226`` for must be whole under
its name, no final name may hold anything that differs from its source, and
the same command run again must end with an identical tree.

Needs root, loop devices, FUSE, e2fsprogs, xfsprogs and the Globus tools: a missing piece fails.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from transfercore.testing.loopback import wait_port_file
from transfercore.testing.powerloss.realfs import RealFS
from transfercore.testing.throttle import Throttle
from transfercore.testing.trees import TreeSpec, make_tree, published

from .conftest import needs_globus

pytestmark = [pytest.mark.fuse, pytest.mark.globus, needs_globus]

TREE = TreeSpec(files=400, max_size=64 * 1024, files_per_dir=40, seed=29)
TIMEOUT = 90.0


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("gridftp-tree") / "src"
    files, _ = make_tree(root, TREE)
    assert files >= TREE.files
    # globus-url-copy -r follows symbolic links (one leads out of the tree): files only
    for link in [p for p in root.rglob("*") if p.is_symlink()]:
        link.unlink()
    return root


def start_server(root: Path, log: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int]:
    port_file = log.with_name(f"{log.name}.port")
    port_file.unlink(missing_ok=True)
    # its own process group: the cut kills it with everything it started; --port 0: a port it
    # picks itself, which no other process can take before it listens
    proc = subprocess.Popen(
        [sys.executable, "-m", "transfercore", "serve", "--port", "0", "--port-file", str(port_file),
         "--anonymous-write", "--root", str(root), "-v"],
        stdout=subprocess.DEVNULL, stderr=open(log, "ab"), start_new_session=True, env=env,
    )
    return proc, wait_port_file(port_file, proc)


def upload_command(src: Path, port: int, *extra: str) -> list[str]:
    return ["globus-url-copy", *extra, "-r", "-cd", "-cc", "4", "-fast", f"file://{src}/", f"ftp://127.0.0.1:{port}/t/"]


def answered(text: str, port: int) -> set[str]:
    """The files (relative to the tree) the client's debug output shows a 226 for."""
    pattern = re.compile(rf"debug: response from ftp://127\.0\.0\.1:{port}/t/(\S+):\n226 ")
    return set(pattern.findall(text))


def cut_session(fs: RealFS, tree: Path, dst: Path, tmp_path: Path, rng: random.Random,
                env: dict[str, str] | None = None, flags: tuple[str, ...] = ()) -> tuple[set[str], set[str]]:
    """Upload ``tree`` until some files were answered 226, cut the power; (files answered, files present)."""
    out = tmp_path / "client.out"
    server, port = start_server(dst, tmp_path / "serve.log", env)
    # slowed to a fraction of its time, so that the cut lands while files are in flight
    throttle = Throttle(server.pid, duty=0.3, period=0.05)
    with open(out, "wb") as sink:
        client = subprocess.Popen(upload_command(tree, port, "-dbg", *flags), stdout=sink, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    cut_after = rng.randint(30, 120)
    deadline = time.monotonic() + TIMEOUT
    try:
        while len(answered(out.read_text(errors="replace"), port)) < cut_after:
            assert client.poll() is None, "the upload ended before the power cut"
            assert time.monotonic() < deadline, "too few 226 replies in time"
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.05))  # lands anywhere between two 226 replies
    finally:
        throttle.close()
        fs.cut([server, client])
    reported = answered(out.read_text(errors="replace"), port)
    present, _missing = published(tree, dst / "t")  # also: nothing differing under a final name
    assert len(reported) >= cut_after
    assert len(present) < TREE.files, "the cut should land mid-session"
    return reported, present


def check_answered(reported: set[str], present: set[str]) -> None:
    lost = reported - present
    assert not lost, f"{len(lost)} files answered 226 were lost: {sorted(lost)[:5]}"


@pytest.mark.parametrize("fstype,seed", [("ext4", 41), ("xfs", 42)])
def test_power_cut_mid_session_keeps_every_file_answered_226(tmp_path, tree, fstype, seed):
    with RealFS(tmp_path / "rfs", fstype) as fs:
        dst = fs.mountpoint / "dst"
        dst.mkdir()
        check_answered(*cut_session(fs, tree, dst, tmp_path, random.Random(seed)))

        server, port = start_server(dst, tmp_path / "serve.log")
        try:
            rerun = subprocess.run(upload_command(tree, port), capture_output=True, text=True, timeout=TIMEOUT)
        finally:
            server.terminate()
            server.wait(10)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        # hidden partial names a killed server leaves are not compared: only the tree's own names
        diff = subprocess.run(["diff", "-r", "--no-dereference", "-x", "*.tcpart*", str(tree), str(dst / "t")],
                              capture_output=True, text=True)
        assert diff.returncode == 0, diff.stdout[:2000]


def test_power_cut_mid_pipelined_session_keeps_every_file_answered_226(tmp_path, tree):
    """``-pp`` sends no ALLO: each small upload is spooled in memory only and
    made durable by its writer's group commit before its 226."""
    with RealFS(tmp_path / "rfs", "ext4") as fs:
        dst = fs.mountpoint / "dst"
        dst.mkdir()
        reported, present = cut_session(fs, tree, dst, tmp_path, random.Random(44), flags=("-pp",))
        check_answered(reported, present)
        # the spools were never files: nothing hidden is left beside the published ones
        assert not [p for p in (dst / "t").rglob(".tc-spool-*")]


def test_the_check_catches_a_server_that_answers_226_before_the_data_are_durable(tmp_path, tree):
    # fsync, fdatasync and syncfs turned into no-ops in the server, and ext4 told
    # to commit on its own only every minute: files are answered 226 but never
    # reach the disk, and the check must say so.
    hooks = tmp_path / "nosync"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(
        "import os\n"
        "os.fsync = os.fdatasync = lambda fd: None\n"
        "import transfercore_posix.fsutil as fsutil\n"
        "import transfercore_posix.writer as writer\n"
        "fsutil.syncfs = writer.syncfs = lambda fd, what: None\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(hooks), os.environ.get("PYTHONPATH")])))
    with RealFS(tmp_path / "rfs", "ext4", mount_options=("commit=60",)) as fs:
        dst = fs.mountpoint / "dst"
        dst.mkdir()
        reported, present = cut_session(fs, tree, dst, tmp_path, random.Random(43), env)
        with pytest.raises(AssertionError, match="answered 226 were lost"):
            check_answered(reported, present)


def test_the_check_reads_226_replies_from_the_client_output():
    text = (
        "debug: response from ftp://127.0.0.1:5000/t/d0/a.bin:\n226 Transfer Complete.\n"
        "debug: response from ftp://127.0.0.1:5000/t/d0/b.bin:\n150 Beginning transfer.\n"
        "debug: response from ftp://127.0.0.1:5001/t/other.bin:\n226 Transfer Complete.\n"
    )
    assert answered(text, 5000) == {"d0/a.bin"}
