"""Commands sent while a transfer runs are answered in order after it (``globus-url-copy -pp``); ABOR still acts at once."""

from __future__ import annotations

import filecmp
import os
import random
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Client, needs_globus


def data(hp: tuple[str, int]) -> socket.socket:
    return socket.create_connection(hp, timeout=20)


def test_commands_during_a_transfer_are_answered_in_order_after_it(serve, root: Path) -> None:
    srv = serve("--root", str(root), "--anonymous-write")
    (root / "there").write_bytes(b"abc")
    c = Client(srv.port)
    c.login()
    assert c.cmd("TYPE I")[0] == 200
    conn = data(c.pasv())
    c.raw(b"STOR /up.bin\r\n")
    assert c.reply()[0] == 150
    # the next file's commands, pipelined before the upload ends
    c.raw(b"NOOP\r\nSIZE /there\r\nPWD\r\nPASV\r\n")
    conn.sendall(b"x" * 50_000)
    conn.close()
    replies = [c.reply() for _ in range(5)]
    assert [code for code, _ in replies] == [226, 200, 213, 257, 227], replies
    assert replies[2][1] == "213 3"
    assert (root / "up.bin").read_bytes() == b"x" * 50_000


def test_a_pipelined_transfer_runs_after_the_one_before(serve, root: Path) -> None:
    srv = serve("--root", str(root), "--anonymous")
    (root / "a").write_bytes(os.urandom(70_000))
    (root / "b").write_bytes(os.urandom(30_000))
    c = Client(srv.port)
    c.login()
    assert c.cmd("TYPE I")[0] == 200
    first = data(c.pasv())
    c.raw(b"RETR /a\r\nPASV\r\nRETR /b\r\n")
    assert c.reply()[0] == 150
    got_a = b""
    while chunk := first.recv(65536):
        got_a += chunk
    assert c.reply()[0] == 226
    code, text = c.reply()
    assert code == 227
    nums = [int(n) for n in text[text.index("(") + 1 : text.index(")")].split(",")]
    second = data((".".join(map(str, nums[:4])), nums[4] * 256 + nums[5]))
    assert c.reply()[0] == 150
    got_b = b""
    while chunk := second.recv(65536):
        got_b += chunk
    assert c.reply()[0] == 226
    assert (got_a, got_b) == ((root / "a").read_bytes(), (root / "b").read_bytes())


def test_abor_still_acts_at_once_and_the_queue_follows(serve, root: Path) -> None:
    srv = serve("--root", str(root), "--anonymous-write")
    c = Client(srv.port)
    c.login()
    assert c.cmd("TYPE I")[0] == 200
    conn = data(c.pasv())
    c.raw(b"STOR /slow.bin\r\n")
    assert c.reply()[0] == 150
    conn.sendall(b"y" * 1000)  # the upload stays open: it ends only by ABOR
    c.raw(b"NOOP\r\nABOR\r\n")
    replies = [c.reply()[0] for _ in range(3)]
    # the transfer's failure, ABOR's own reply, then the queued NOOP
    assert replies == [426, 226, 200], replies
    conn.close()
    assert not (root / "slow.bin").exists()
    assert c.cmd("NOOP")[0] == 200


def make_tree(base: Path, count: int = 20) -> Path:
    rnd = random.Random(19)
    tree = base / "tree"
    for i in range(count):
        d = tree / f"d{i % 3}" if i % 2 else tree
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.bin").write_bytes(rnd.randbytes(rnd.randrange(0, 300_000)))
    for path in [tree, *tree.rglob("*")]:
        os.chmod(path, 0o777 if path.is_dir() else 0o666)
    return tree


def same_tree(a: Path, b: Path) -> None:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == 20
    for rel in files_a:
        assert filecmp.cmp(a / rel, b / rel, shallow=False), rel


def guc(*args: str) -> None:
    proc = subprocess.run(["globus-url-copy", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def spot() -> Iterator[Path]:
    """A directory the real server (anonymous mapped to nobody, who cannot enter pytest's tmp_path) can use."""
    d = Path(tempfile.mkdtemp(prefix="tc-gridftp-pp-"))
    os.chmod(d, 0o777)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@needs_globus
@pytest.mark.parametrize("fast", [[], ["-fast"]], ids=["stream", "fast"])
def test_pipelined_tree_put_and_get_with_globus_url_copy(serve, root: Path, tmp_path: Path, fast: list[str]) -> None:
    src = make_tree(tmp_path / "src")
    srv = serve("--root", str(root), "--anonymous-write")
    guc("-pp", *fast, "-r", "-cd", f"file://{src}/", srv.url("/tree/"))
    same_tree(src, root / "tree")
    back = tmp_path / "back"
    guc("-pp", *fast, "-r", "-cd", srv.url("/tree/"), f"file://{back}/")
    same_tree(src, back)


@needs_globus
def test_pipelined_third_party_tree_from_the_real_server(serve, root: Path, real_server: int, spot: Path) -> None:
    src = make_tree(spot)
    srv = serve("--root", str(root), "--anonymous-write")
    guc("-pp", "-fast", "-r", "-cd", f"ftp://127.0.0.1:{real_server}{src}/", srv.url("/tree2/"))
    same_tree(src, root / "tree2")


@needs_globus
def test_pipelined_third_party_tree_to_the_real_server(serve, root: Path, real_server: int, spot: Path,
                                                       tmp_path: Path) -> None:
    src = make_tree(root)
    srv = serve("--root", str(root), "--anonymous")
    guc("-pp", "-fast", "-r", "-cd", srv.url("/tree/"), f"ftp://127.0.0.1:{real_server}{spot}/tree2/")
    same_tree(src, spot / "tree2")
