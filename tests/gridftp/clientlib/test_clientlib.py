"""Conformance with the Globus FTP client library (libglobus-ftp-client).

Each case runs one library operation through ``ftpcheck`` (ftpcheck.c, compiled at test time)
against four servers: the real ``globus-gridftp-server`` (the reference: every case here passes
on it), ``transfercore serve``, ``serve --driver hpss://`` (the emulator) and the DSI.  A case the
real server passes must pass on ours, except the stricter cases listed in
docs/gridftp-server.md ("Conformance with the Globus client library"); those are asserted as
what they are (a clean refusal that changes nothing), never skipped.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from .conftest import Target

pytestmark = pytest.mark.globus

SIZE = 1_500_000
OFF, END = 1000, 4000  # the slice the partial transfers move


def run(ftpcheck: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ftpcheck), *args], capture_output=True, text=True, timeout=timeout, check=False)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def reply_code(proc: subprocess.CompletedProcess[str]) -> int | None:
    """The server's reply code in the library's error text (its first line that starts with one)."""
    m = re.search(r"^(\d{3})[ -]", proc.stderr, re.M)
    return int(m.group(1)) if m else None


@pytest.fixture
def area(target: Target, request: pytest.FixtureRequest) -> str:
    """A fresh directory for one test, with ``src.bin`` (random) in it; returns its relative name."""
    rel = re.sub(r"\W", "_", request.node.name)
    d = target.path(rel)
    d.mkdir()
    d.chmod(0o777)
    (d / "src.bin").write_bytes(os.urandom(SIZE))
    (d / "src.bin").chmod(0o644)
    return rel


def source(target: Target, area: str) -> bytes:
    return target.path(f"{area}/src.bin").read_bytes()


# ---- existence, size, listings ----


def test_exists_for_a_file_a_directory_and_the_root(ftpcheck: Path, target: Target, area: str) -> None:
    for rel in (f"{area}/src.bin", area, ""):
        assert ok(run(ftpcheck, "exists", target.url(rel))).strip() == "exists", rel


def test_a_missing_path_does_not_exist(ftpcheck: Path, target: Target, area: str) -> None:
    for rel in (f"{area}/no-such-file", f"{area}/no-such-dir/file"):
        proc = run(ftpcheck, "exists", target.url(rel))
        assert (proc.returncode, proc.stdout.strip()) == (1, "missing"), proc.stdout + proc.stderr
        assert reply_code(proc) == 550, proc.stderr


def test_size_of_a_file_and_of_a_missing_path(ftpcheck: Path, target: Target, area: str) -> None:
    assert ok(run(ftpcheck, "size", target.url(f"{area}/src.bin"))).strip() == str(SIZE)
    proc = run(ftpcheck, "size", target.url(f"{area}/no-such-file"))
    assert proc.returncode == 1 and reply_code(proc) == 550, proc.stderr


def test_mlst_names_type_size_and_path(ftpcheck: Path, target: Target, area: str) -> None:
    line = ok(run(ftpcheck, "mlst", target.url(f"{area}/src.bin"))).strip()
    facts, _, name = line.partition(" ")
    fields = dict(f.split("=", 1) for f in facts.rstrip(";").split(";"))
    assert fields["Type"].lower() == "file" and fields["Size"] == str(SIZE), line
    assert name.endswith(f"{area}/src.bin"), line


def test_mlsd_lists_every_entry_with_its_size(ftpcheck: Path, target: Target, area: str) -> None:
    d = target.path(f"{area}/tree")
    d.mkdir()
    (d / "sub").mkdir()
    for i in range(5):
        (d / f"f{i}").write_bytes(b"x" * (i * 1000 + 1))
    listing = ok(run(ftpcheck, "mlsd", target.url(f"{area}/tree")))
    entries = {}
    for line in listing.splitlines():
        facts, _, name = line.partition(" ")
        entries[name] = dict(f.split("=", 1) for f in facts.rstrip(";").split(";") if "=" in f)
    files = {n: e["Size"] for n, e in entries.items() if e.get("Type", "").lower() == "file"}
    assert files == {f"f{i}": str(i * 1000 + 1) for i in range(5)}, listing
    assert entries["sub"]["Type"].lower() == "dir", listing


# ---- whole-file transfers ----


@pytest.mark.parametrize("mode", [[], ["-E", "4", "-A"], ["-E", "4"]], ids=["stream", "modeE-p4-allo", "modeE-p4"])
def test_put_then_get_round_trip(ftpcheck: Path, target: Target, area: str, tmp_path: Path, mode: list[str]) -> None:
    data = source(target, area)
    local = tmp_path / "local.bin"
    local.write_bytes(data)
    ok(run(ftpcheck, "put", str(local), target.url(f"{area}/up.bin"), *mode))
    assert target.path(f"{area}/up.bin").read_bytes() == data
    back = tmp_path / "back.bin"
    get_mode = [m for m in mode if m != "-A"]
    assert ok(run(ftpcheck, "get", target.url(f"{area}/up.bin"), str(back), *get_mode)).strip() == f"received {SIZE}"
    assert back.read_bytes() == data


def test_get_restarted_at_an_offset_sends_only_the_rest(ftpcheck: Path, target: Target, area: str,
                                                        tmp_path: Path) -> None:
    data = source(target, area)
    back = tmp_path / "back.bin"
    out = ok(run(ftpcheck, "get", target.url(f"{area}/src.bin"), str(back), "-R", "1000000"))
    assert out.strip() == f"received {SIZE - 1_000_000}"
    assert back.read_bytes()[1_000_000:] == data[1_000_000:]


@pytest.mark.parametrize("mode", [[], ["-E", "2"]], ids=["stream", "modeE-p2"])
def test_third_party_transfer(ftpcheck: Path, target: Target, area: str, mode: list[str]) -> None:
    ok(run(ftpcheck, "3pt", target.url(f"{area}/src.bin"), target.url(f"{area}/copy.bin"), *mode))
    assert target.path(f"{area}/copy.bin").read_bytes() == source(target, area)


def test_pipelined_third_party_transfers(ftpcheck: Path, target: Target, area: str) -> None:
    """The library sends the next file's commands before the previous file's reply (as Globus Transfer does)."""
    src, dst = target.path(f"{area}/tree"), target.path(f"{area}/tree2")
    src.mkdir()
    dst.mkdir()
    dst.chmod(0o777)
    names = [f"f{i}" for i in range(10)]
    for i, n in enumerate(names):
        (src / n).write_bytes(os.urandom(i * 1000 + 1))
        (src / n).chmod(0o644)
    out = ok(run(ftpcheck, "pipe", target.url(f"{area}/tree"), target.url(f"{area}/tree2"), *names))
    assert out.strip() == "requested 10"
    assert {n: (dst / n).read_bytes() for n in names if (dst / n).exists()} == {n: (src / n).read_bytes() for n in names}


# ---- restart from the server's own markers ----


@pytest.mark.parametrize("allo", [["-A"], []], ids=["allo", "no-allo"])
def test_put_aborted_then_restarted_from_its_markers(ftpcheck: Path, target: Target, area: str, tmp_path: Path,
                                                     allo: list[str]) -> None:
    """MODE E put: half the file, abort once a 111 marker names some of it, restart with the markers."""
    data = source(target, area)
    local = tmp_path / "local.bin"
    local.write_bytes(data)
    proc = run(ftpcheck, "restart-put", str(local), target.url(f"{area}/rp.bin"), *allo)
    if target.name == "dsi" and not allo and "error: restarted put" in proc.stderr:
        # stricter on purpose (docs/globus-dsi.md): without ALLO there is no size to check a REST against
        assert reply_code(proc) == 553, proc.stderr
        assert not target.path(f"{area}/rp.bin").exists()
        return
    if target.name == "dsi" and not allo and "error: no restart marker" in proc.stderr:
        # stricter on purpose (docs/globus-dsi.md): without ALLO the DSI spools, and a spool it
        # cannot resume from earns no 111; the aborted upload publishes nothing
        assert not target.path(f"{area}/rp.bin").exists()
        return
    out = ok(proc)
    marker = re.search(r"^marker (\S+)$", out, re.M)
    resent = re.search(r"^resent (\d+)$", out, re.M)
    assert marker and resent, out
    # the markers name only what was sent before the abort, so the restart sent less than the file
    assert 0 < int(resent.group(1)) < SIZE, out
    assert target.path(f"{area}/rp.bin").read_bytes() == data


# ---- partial transfers (ESTO / ERET) ----
#
# The reference: a partial put writes the slice at its offset, into an existing file in place
# (the rest stays) or into a new file (a hole before it).  Stricter on purpose: storage that takes
# only ordered writes (hpss) may refuse a slice it cannot place, with a 5xx other than 451, before
# any byte lands: then the destination is as it was.


def expect_partial(target: Target, proc: subprocess.CompletedProcess[str], dest: Path,
                   before: bytes | None, want: bytes) -> None:
    if target.name == "hpss" and proc.returncode != 0:
        code = reply_code(proc)
        assert code is not None and 500 <= code < 600 and code != 451, proc.stderr
        assert (dest.read_bytes() if dest.exists() else None) == before
        return
    ok(proc)
    got = dest.read_bytes()
    assert got == want, differs(got, want)


def differs(got: bytes, want: bytes) -> str:
    pairs = enumerate(zip(got, want, strict=False))
    first = next((i for i, (a, b) in pairs if a != b), min(len(got), len(want)))
    return f"the file has {len(got)} bytes, {len(want)} expected; they differ from offset {first}"


@pytest.mark.parametrize("allo", [[], ["-A"], ["-E", "4", "-A"]], ids=["no-allo", "allo", "modeE-p4-allo"])
def test_partial_put_into_an_existing_file_updates_it_in_place(ftpcheck: Path, target: Target, area: str,
                                                               tmp_path: Path, allo: list[str]) -> None:
    old = source(target, area)
    dest = target.path(f"{area}/dest.bin")
    dest.write_bytes(old)
    dest.chmod(0o666)
    new = os.urandom(SIZE)
    local = tmp_path / "new.bin"
    local.write_bytes(new)
    proc = run(ftpcheck, "pput", str(local), target.url(f"{area}/dest.bin"), str(OFF), str(END), *allo)
    expect_partial(target, proc, dest, old, old[:OFF] + new[OFF:END] + old[END:])


def test_partial_put_at_offset_zero_keeps_the_rest_of_the_file(ftpcheck: Path, target: Target, area: str,
                                                               tmp_path: Path) -> None:
    """``ESTO A 0`` rewrites the head of the file; it is not a STOR that truncates the file."""
    old = source(target, area)
    dest = target.path(f"{area}/dest.bin")
    dest.write_bytes(old)
    dest.chmod(0o666)
    new = os.urandom(SIZE)
    local = tmp_path / "new.bin"
    local.write_bytes(new)
    proc = run(ftpcheck, "pput", str(local), target.url(f"{area}/dest.bin"), "0", str(END))
    expect_partial(target, proc, dest, old, new[:END] + old[END:])


@pytest.mark.parametrize("allo", [[], ["-A"]], ids=["no-allo", "allo"])
def test_partial_put_into_a_new_file_leaves_a_hole_before_the_slice(ftpcheck: Path, target: Target, area: str,
                                                                    tmp_path: Path, allo: list[str]) -> None:
    new = os.urandom(SIZE)
    local = tmp_path / "new.bin"
    local.write_bytes(new)
    dest = target.path(f"{area}/fresh.bin")
    proc = run(ftpcheck, "pput", str(local), target.url(f"{area}/fresh.bin"), str(OFF), str(END), *allo)
    expect_partial(target, proc, dest, None, bytes(OFF) + new[OFF:END])


def test_partial_third_party_transfer(ftpcheck: Path, target: Target, area: str) -> None:
    data = source(target, area)
    dest = target.path(f"{area}/slice.bin")
    proc = run(ftpcheck, "p3pt", target.url(f"{area}/src.bin"), target.url(f"{area}/slice.bin"), str(OFF), str(END))
    expect_partial(target, proc, dest, None, bytes(OFF) + data[OFF:END])


def test_partial_get_returns_the_slice_at_its_offsets(ftpcheck: Path, target: Target, area: str,
                                                      tmp_path: Path) -> None:
    data = source(target, area)
    back = tmp_path / "slice.bin"
    out = ok(run(ftpcheck, "pget", target.url(f"{area}/src.bin"), str(back), str(OFF), str(END)))
    assert out.strip() == f"received {END - OFF}"
    assert back.read_bytes()[OFF:END] == data[OFF:END]
