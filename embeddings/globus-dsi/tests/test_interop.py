"""The real globus-gridftp-server with the transfercore DSI, driven by the real globus-url-copy."""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import stat
from pathlib import Path

import pytest
from transfercore_globus_dsi.testing import Control, guc

pytestmark = pytest.mark.globus

MARK111 = re.compile(r"^111 Range Marker (\S+)", re.MULTILINE)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    p = tmp_path / "src.bin"
    p.write_bytes(os.urandom(6 * 1024 * 1024 + 12345))
    return p


def test_stream_put_and_get(served, root, src, tmp_path):
    guc(f"file://{src}", served.ftp("/put.bin"))
    assert (root / "put.bin").read_bytes() == src.read_bytes()
    back = tmp_path / "back.bin"
    guc(served.ftp("/put.bin"), f"file://{back}")
    assert back.read_bytes() == src.read_bytes()
    # no partial file or resume record is left behind
    assert sorted(p.name for p in root.iterdir()) == ["put.bin"]


def test_mode_e_parallel_put_and_get(served, root, src, tmp_path):
    proc = guc("-dbg", "-vb", "-fast", "-p", "4", f"file://{src}", served.ftp("/e.bin"))
    assert (root / "e.bin").read_bytes() == src.read_bytes()
    out = proc.stdout + proc.stderr
    assert "MODE E" in out
    marks = MARK111.findall(out)
    assert marks, out[-3000:]
    # the markers together name the whole file, and come before the final 226
    from transfercore.ranges import RangeSet

    covered = RangeSet()
    for m in marks:
        covered = covered | RangeSet.parse(m)
    assert covered == RangeSet.span(0, src.stat().st_size)
    assert out.rindex("111 Range Marker") < out.rindex("226 ")
    back = tmp_path / "back.bin"
    proc = guc("-dbg", "-fast", "-p", "4", served.ftp("/e.bin"), f"file://{back}")
    assert back.read_bytes() == src.read_bytes()
    assert "Parallelism=4" in proc.stdout + proc.stderr
    # where Python ran on the network path, measured per upload
    assert re.search(r"s in Python on Globus data threads", served.dsi_log())


def test_112_from_bytes_111_only_from_durable(dsi_server, tmp_path, src):
    """model=none: durable() never names a byte.  The upload succeeds with 112
    performance markers and not one 111 restart marker."""
    state = tmp_path / "state"
    state.mkdir()
    server = dsi_server(f"mock://st/?dir={state}&model=none")
    proc = guc("-dbg", "-vb", "-fast", "-p", "4", f"file://{src}", server.ftp("/n.bin"))
    out = proc.stdout + proc.stderr
    assert "112-Perf Marker" in out and "226 " in out
    assert not MARK111.findall(out), out[-3000:]
    back = tmp_path / "back.bin"
    guc(server.ftp("/n.bin"), f"file://{back}")
    assert back.read_bytes() == src.read_bytes()


def test_226_only_after_complete(served, root):
    """An upload shorter than its ALLO cannot complete(): 451, nothing published."""
    c = Control(served.port)
    try:
        c.login()
        replies = c.stor("/short.bin", b"x" * 1000, alloc=5000)
        codes = [code for code, _ in replies]
        assert codes[-1] == 451, replies
        assert 226 not in codes
        assert "short.bin" not in os.listdir(root)
        # and a complete one gets 226 and is published
        replies = c.stor("/ok.bin", b"y" * 5000, alloc=5000)
        assert replies[-1][0] == 226, replies
        assert (root / "ok.bin").read_bytes() == b"y" * 5000
    finally:
        c.close()


def test_marker_the_storage_cannot_back_gets_553(served, root):
    c = Control(served.port)
    try:
        c.login()
        replies = c.stor("/r.bin", b"z" * 4096, alloc=8192, rest="4096")
        code, text = replies[-1]
        assert code == 553, replies
        assert "cannot resume" in text  # the driver's reason reaches the client
        assert not (root / "r.bin").exists()
    finally:
        c.close()


def test_verify_checksum(served, src):
    proc = guc("-dbg", "-fast", "-p", "2", "-verify-checksum", f"file://{src}", served.ftp("/c.bin"))
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    assert f"213 {md5}" in proc.stdout + proc.stderr


def test_list_and_create_dirs(served, root, src):
    guc("-cd", f"file://{src}", served.ftp("/deep/er/x.bin"))
    assert (root / "deep" / "er" / "x.bin").read_bytes() == src.read_bytes()
    proc = guc("-list", served.ftp("/deep/er/"))
    assert "x.bin" in proc.stdout
    proc = guc("-list", served.ftp("/deep/"))
    assert "er/" in proc.stdout


def test_a_recursive_download_of_a_name_no_listing_line_can_carry_fails_instead_of_leaving_it_out(
        served, root, tmp_path):
    (root / "d").mkdir()
    (root / "d" / "c\r\nd").write_bytes(b"x")
    (root / "d" / "e").write_bytes(b"y")
    proc = guc("-r", "-cd", served.ftp("/d/"), f"file://{tmp_path / 'out'}/", check=False)
    # (it ended 0 with only e downloaded before: the DSI left the name out of the listing)
    assert proc.returncode != 0 and "cannot list" in proc.stderr, proc.stderr


def test_a_listing_with_an_entry_that_cannot_be_looked_at_fails_instead_of_leaving_it_out(root, tmp_path):
    """A directory the sessions may read but not search: the listing fails naming the entry
    (it was listed empty before, and a recursive download ended 0 without its files)."""
    from transfercore_globus_dsi.testing import DsiServer

    class WithoutOverride(DsiServer):
        def argv(self) -> list[str]:
            # root searches any directory: not without these two capabilities
            return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *super().argv()]

    locked = root / "top" / "locked"
    locked.mkdir(parents=True)
    (locked / "f").write_bytes(b"x")
    (root / "top" / "ok").write_bytes(b"y")
    locked.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)  # r--r--r--
    work = tmp_path / "srv"
    work.mkdir()
    server = (WithoutOverride if os.geteuid() == 0 else DsiServer)(f"posix://{root}", work).start()
    try:
        proc = guc("-r", "-cd", server.ftp("/top/"), f"file://{tmp_path / 'out'}/", check=False)
        assert proc.returncode != 0 and "cannot look at" in proc.stderr and "/locked/f" in proc.stderr, proc.stderr
    finally:
        server.stop()
        locked.chmod(0o755)


def test_recursive_tree_cc2_p2(served, root, tmp_path):
    tree = tmp_path / "tree"
    files = {}
    for i in range(6):
        sub = tree / f"d{i % 3}" / ("inner" if i % 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        data = os.urandom(200_000 + i * 70_001)
        (sub / f"f{i}.bin").write_bytes(data)
        files[(sub / f"f{i}.bin").relative_to(tree)] = data
    guc("-r", "-cd", "-cc", "2", "-p", "2", "-fast", f"file://{tree}/", served.ftp("/copy/"), timeout=120)
    for rel, data in files.items():
        assert (root / "copy" / rel).read_bytes() == data, rel
    back = tmp_path / "back"
    guc("-r", "-cd", "-cc", "2", "-p", "2", "-fast", served.ftp("/copy/"), f"file://{back}/", timeout=120)
    for rel, data in files.items():
        assert (back / rel).read_bytes() == data, rel


def test_namespace_commands_and_cksm(served, root):
    (root / "a.bin").write_bytes(b"hello world")
    c = Control(served.port)
    try:
        c.login()
        assert c.cmd("MKD /newdir")[0] == 257
        assert (root / "newdir").is_dir()
        code, text = c.cmd("SIZE /a.bin")
        assert (code, text.split()[-1]) == (213, "11")
        code, text = c.cmd("CKSM MD5 0 -1 /a.bin")
        assert code == 213 and text.split()[-1] == hashlib.md5(b"hello world").hexdigest(), text
        code, text = c.cmd("CKSM ADLER32 0 -1 /a.bin")
        assert code == 213 and text.split()[-1] == "1a0b045d", text
        assert c.cmd("RNFR /a.bin")[0] == 350
        assert c.cmd("RNTO /newdir/b.bin")[0] == 250
        assert (root / "newdir" / "b.bin").read_bytes() == b"hello world"
        code, text = c.cmd("MLST /newdir/b.bin")
        assert code == 250 and "size=11;" in text.lower(), text
        code, text = c.cmd("RMD /newdir")
        assert code in (451, 550) and "not empty" in text, text  # the driver's error reaches the client
        assert c.cmd("DELE /newdir/b.bin")[0] == 250
        assert c.cmd("RMD /newdir")[0] == 250
        assert not (root / "newdir").exists()
        code, text = c.cmd("DELE /missing.bin")
        assert code == 550, text
    finally:
        c.close()


def _raw_server(tmp_path, dsi_arg, env_extra):
    """The real server started by hand with a given -dsi argument (no checks by the CLI)."""
    import subprocess

    import transfercore_globus_dsi as dsi
    from transfercore_globus_dsi.testing import anonymous_args, loopback_args

    from transfercore.testing.loopback import free_port, wait_port

    port = free_port()
    log = tmp_path / "bridge.log"
    env = dict(os.environ, LD_LIBRARY_PATH=dsi.module_dir(), TRANSFERCORE_DSI_LOG=str(log), **env_extra)
    proc = subprocess.Popen(
        ["globus-gridftp-server", *loopback_args(port), *anonymous_args(), "-d", "ERROR",
         "-l", str(tmp_path / "g.log"), "-dsi", dsi_arg],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_port(port, proc)
    return proc, port, log


@pytest.mark.parametrize(
    "dsi_arg, env_extra, expected",
    [
        ("transfercore:nodriver:///x", {}, "no transfercore driver named 'nodriver'"),
        ("transfercore:posix:///x colour=blue", {}, "unknown DSI option 'colour'"),
        ("transfercore:posix:///x", {"TRANSFERCORE_DSI_PYTHON": "/nonexistent/python"},
         "the Python executable /nonexistent/python is missing"),
        # the embedded interpreter finds a broken copy of the DSI's Python part first
        ("transfercore:posix:///x", {"PYTHONPATH": "{broken}"},
         "cannot load its Python part: RuntimeError: broken on purpose"),
    ],
)
def test_bridge_errors_reach_the_client_and_the_log(tmp_path, dsi_arg, env_extra, expected):
    broken = tmp_path / "broken" / "transfercore_globus_dsi"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise RuntimeError('broken on purpose')\n")
    env_extra = {k: v.replace("{broken}", str(broken.parent)) for k, v in env_extra.items()}
    proc, port, log = _raw_server(tmp_path, dsi_arg, env_extra)
    try:
        c = Control(port)
        assert c.cmd("USER anonymous")[0] == 331
        code, text = c.cmd("PASS x@y")
        assert code >= 400, text
        c.sock.close()
        from transfercore_globus_dsi.testing import wait_for

        wait_for(lambda: log.exists() and expected in log.read_text(), 10, f"{expected!r} in the bridge log")
    finally:
        proc.terminate()
        proc.wait(10)


def test_server_threads_mode_e_put_get(dsi_server, root, src, tmp_path):
    """-threads 4: data callbacks, and so the driver's writes, come from several threads."""
    server = dsi_server(f"posix://{root}", server_args=["-threads", "4"])
    guc("-fast", "-p", "4", f"file://{src}", server.ftp("/t.bin"))
    assert (root / "t.bin").read_bytes() == src.read_bytes()
    back = tmp_path / "t-back.bin"
    guc("-fast", "-p", "4", server.ftp("/t.bin"), f"file://{back}")
    assert back.read_bytes() == src.read_bytes()


def test_partial_get_eret(served, root, tmp_path):
    data = os.urandom(3 * 1024 * 1024)
    (root / "p.bin").write_bytes(data)
    back = tmp_path / "part.bin"
    proc = guc("-dbg", "-off", "1000000", "-len", "777777", served.ftp("/p.bin"), f"file://{back}")
    assert "ERET" in proc.stdout + proc.stderr
    got = back.read_bytes()
    # globus-url-copy writes the part at its offset in the local file
    assert got[1000000:] == data[1000000:1777777]


def test_upload_without_allo_is_spooled_then_stored(served, root):
    data = os.urandom(1024 * 1024 + 17)
    c = Control(served.port)
    try:
        c.login()
        replies = c.stor("/noallo.bin", data)
        assert replies[-1][0] == 226, replies
        assert (root / "noallo.bin").read_bytes() == data
        # a restart of an upload of unknown size resumes only into its durable spool: none here
        replies = c.stor("/noallo2.bin", data[100:], rest="100")
        assert replies[-1][0] == 553 and "not all durable" in replies[-1][1], replies
    finally:
        c.close()


@pytest.mark.parametrize("algorithm", ["SHA256", "CRC32C"])
def test_cksm_other_algorithms(served, root, algorithm):
    from transfercore import checksums

    data = os.urandom(100_000)
    (root / "k.bin").write_bytes(data)
    c = Control(served.port)
    try:
        c.login()
        code, text = c.cmd(f"CKSM {algorithm} 0 -1 /k.bin")
        assert code == 213, text
        assert text.split()[-1] == checksums.digest_bytes(algorithm.lower(), data)
        code, text = c.cmd(f"CKSM {algorithm} 1000 5000 /k.bin")
        assert code == 213 and text.split()[-1] == checksums.digest_bytes(algorithm.lower(), data[1000:6000]), text
    finally:
        c.close()


def test_site_config_file_loads_the_dsi(tmp_path, src):
    """The site way: the lines --site-config prints, as the server's config file, with
    nothing in the environment; the server loads the module and stores through it."""
    import subprocess

    from transfercore_globus_dsi import launch
    from transfercore_globus_dsi.testing import anonymous_args

    from transfercore.testing.loopback import free_port, wait_port

    data = tmp_path / "site"
    data.mkdir()
    log = tmp_path / "site-dsi.log"
    conf = tmp_path / "gridftp.conf"
    conf.write_text(launch.site_config(f"posix://{data}", str(log)))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "TRANSFERCORE_DSI_LOG")}
    proc = subprocess.Popen(
        [launch.find_server(), "-c", str(conf), "-p", str(port), "-control-interface", "127.0.0.1",
         "-data-interface", "127.0.0.1", *anonymous_args(), "-d", "ERROR", "-l", str(tmp_path / "g.log")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, proc)
        guc(f"file://{src}", f"ftp://127.0.0.1:{port}/site.bin")
        assert (data / "site.bin").read_bytes() == src.read_bytes()
        assert "session for anonymous: driver posix" in log.read_text()
    finally:
        proc.terminate()
        proc.wait(10)


def test_confined_posix_refuses_symlinks_leaving_the_root(dsi_server, root, tmp_path, src):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "link").symlink_to(outside)
    server = dsi_server(f"posix:///?root={root}")
    guc(f"file://{src}", server.ftp("/in.bin"))
    assert (root / "in.bin").read_bytes() == src.read_bytes()
    proc = guc(server.ftp("/link/secret.txt"), f"file://{tmp_path}/leak.txt", check=False)
    assert proc.returncode != 0
    assert "550" in proc.stderr and "confined root" in proc.stderr
    assert not (tmp_path / "leak.txt").exists() or (tmp_path / "leak.txt").read_bytes() == b""
    proc = guc(f"file://{src}", server.ftp("/link/planted.bin"), check=False)
    assert proc.returncode != 0 and not (outside / "planted.bin").exists()
    assert "link" not in guc("-list", server.ftp("/")).stdout


def test_markers_off_sends_no_111(dsi_server, root, src):
    server = dsi_server(f"posix://{root}", dsi_options=["markers=off"])
    proc = guc("-dbg", "-fast", "-p", "4", f"file://{src}", server.ftp("/m.bin"))
    out = proc.stdout + proc.stderr
    assert "226 " in out and not MARK111.findall(out)
    assert (root / "m.bin").read_bytes() == src.read_bytes()


def test_site_chmod_and_utime_reach_the_storage(served, root):
    """As the real server: SITE CHMOD and SITE UTIME (UTC) set the object's mode and time through the driver."""
    target = root / "m.bin"
    target.write_bytes(b"meta")
    target.chmod(0o644)
    c = Control(served.port)
    try:
        c.login()
        code, text = c.cmd("SITE CHMOD 600 /m.bin")
        assert code in (200, 250), text
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        code, text = c.cmd("SITE UTIME 20200101120000 /m.bin")
        assert code in (200, 250), text
        when = datetime.datetime(2020, 1, 1, 12, 0, 0, tzinfo=datetime.UTC).timestamp()
        assert target.stat().st_mtime == when
        code, text = c.cmd("SITE CHMOD 600 /missing.bin")
        assert code >= 500, text
    finally:
        c.close()
