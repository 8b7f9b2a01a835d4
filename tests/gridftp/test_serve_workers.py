"""``serve --workers N``: N processes on one port, one server's limits, a supervisor that keeps them."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from transfercore.service.supervisor import WorkerSpec
from transfercore.testing.loopback import cpus_of_threads

from .conftest import Client, Served, needs_globus


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


def wait_for(predicate, timeout: float = 20.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def worker_of(session: int) -> int:
    # session ids are unique across workers: worker k's are k + 1, modulo N
    return (session - 1) % 2


def sessions_in(log: Path, pattern: str) -> list[int]:
    return [int(m) for m in re.findall(rf"session (\d+): {pattern}", log.read_text())]


@pytest.fixture
def workers(serve, root):
    return serve("--root", str(root), "--anonymous-write", "--workers", "2", "-v")


def test_two_workers_start_behind_one_port_and_stop_together(workers: Served) -> None:
    assert workers.proc is not None
    assert len(children(workers.proc.pid)) == 2
    kids = children(workers.proc.pid)
    workers.proc.send_signal(signal.SIGTERM)
    assert workers.proc.wait(20) == 0
    for kid in kids:
        assert not os.path.exists(f"/proc/{kid}") or _zombie_or_gone(kid)


def _zombie_or_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_the_per_address_session_limit_holds_across_workers(serve, root, tmp_path: Path) -> None:
    srv = serve("--root", str(root), "--anonymous-write", "--workers", "2", "-v",
                "--max-sessions-per-address", "1")
    first = Client(srv.port)
    first.login()
    wait_for(lambda: sessions_in(srv.log, "anonymous logged in"), what="the first login in the log")
    held_by = worker_of(sessions_in(srv.log, "anonymous logged in")[0])
    # a second login from the address is refused, whichever worker takes it; go on until
    # one was taken by the other worker (the one that knows of the first session only
    # through the shared table)
    crossed = False
    for _ in range(20):
        c = Client(srv.port)
        assert c.cmd("USER anonymous")[0] == 331
        code, text = c.cmd("PASS x@y")
        assert code == 421 and "Too many sessions from 127.0.0.1 (1)" in text, text
        c.close()
        wait_for(lambda: len(sessions_in(srv.log, r"ended \(Too many sessions")) > 0, what="the refusal log")
        refused = sessions_in(srv.log, r"ended \(Too many sessions")
        if any(worker_of(s) != held_by for s in refused):
            crossed = True
            break
    assert crossed, "every refused login landed on the first session's worker"
    first.close()


def test_a_killed_worker_is_replaced_and_sessions_go_on(workers: Served, root: Path) -> None:
    assert workers.proc is not None
    before = [Client(workers.port) for _ in range(2)]  # one on each worker
    for c in before:
        c.login()
    victim = children(workers.proc.pid)[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: "was killed by SIGKILL; starting another" in workers.log.read_text(),
             what="the supervisor to see the worker die")
    wait_for(lambda: "accepts connections again" in workers.log.read_text(), what="a replacement worker")
    assert len(children(workers.proc.pid)) == 2 and victim not in children(workers.proc.pid)
    # new sessions until one lands on the replacement (it has fewer connections: the next is left to it)
    after: list[Client] = []
    for i in range(20):
        c = Client(workers.port)
        after.append(c)
        c.login()
        host, port = c.pasv()
        c.raw(f"STOR /after-{i}.txt\r\n".encode())
        with socket.create_connection((host, port), timeout=10) as d:
            d.sendall(b"still served\n")
        assert [code for code, _ in c.until_final()] == [150, 226]
        assert (root / f"after-{i}.txt").read_bytes() == b"still served\n"
        if any(n > 1_000_000 for n in sessions_in(workers.log, "connection from")):
            break
    for c in (*before, *after):
        c.close()
    # the replacement numbers its sessions apart from the worker it replaced
    numbers = sessions_in(workers.log, "connection from")
    assert any(n > 1_000_000 for n in numbers), numbers
    assert len(set(numbers)) == len(numbers), numbers


def test_workers_leave_when_their_supervisor_is_killed(workers: Served) -> None:
    assert workers.proc is not None
    kids = children(workers.proc.pid)
    workers.kill()
    wait_for(lambda: all(_zombie_or_gone(k) for k in kids), timeout=15, what="the orphaned workers to stop")


def test_sighup_reaches_every_worker(workers: Served) -> None:
    assert workers.proc is not None
    workers.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: workers.log.read_text().count("reload: configuration") == 2, what="two reloads")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "0"], "--workers 0: give 1 to 64"),
        (["--workers", "many"], "argument --workers: 'many': give a number of processes or auto"),
        (["--workers", "2", "--max-sessions", "3000"], "may be at most 2048 with --workers above 1"),
    ],
)
def test_impossible_worker_settings_are_refused_before_anything_starts(root: Path, extra, message) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "transfercore", "serve", "--root", str(root), "--anonymous", "--port", "0", *extra],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr


def test_workers_auto_starts_one_worker_per_core_this_server_may_run_on(serve, root: Path, tmp_path: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    kids = cores if cores > 1 else 0  # one core: the one process serves, no supervisor
    srv = serve("--root", str(root), "--anonymous-write", "--workers", "auto")
    assert srv.proc is not None
    wait_for(lambda: len(children(srv.proc.pid)) == kids, what=f"{cores} workers")
    # the same from a configuration file, and its number counted as the command line's
    cfg = tmp_path / "serve.toml"
    cfg.write_text('workers = "auto"\n')
    srv = serve("--root", str(root), "--anonymous-write", "--config", str(cfg))
    wait_for(lambda: len(children(srv.proc.pid)) == kids, what=f"{cores} workers from the file")
    cfg.write_text('workers = "lots"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "transfercore", "serve", "--check-config", str(cfg), "--root", str(root), "--anonymous"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2 and "key 'workers'" in proc.stderr and "neither a number" in proc.stderr, proc.stderr


@pytest.mark.globus
@needs_globus
def test_a_tree_through_two_workers_arrives_whole_and_is_spread_over_both(workers: Served, tmp_path: Path,
                                                                            root: Path) -> None:
    src = tmp_path / "src"
    for d in range(6):
        (src / f"d{d}").mkdir(parents=True)
        for f in range(20):
            (src / f"d{d}" / f"f{f}").write_bytes(os.urandom((d * 20 + f) * 97))
    proc = subprocess.run(
        ["globus-url-copy", "-r", "-cd", "-cc", "4", "-fast", f"file://{src}/", workers.url("/tree/")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for path in src.rglob("*"):
        if path.is_file():
            assert (root / "tree" / path.relative_to(src)).read_bytes() == path.read_bytes(), path
    served = {worker_of(s) for s in sessions_in(workers.log, "anonymous logged in")}
    assert served == {0, 1}, "a worker with fewer connections should have taken some of the four"


def test_a_worker_specification_round_trips_and_a_bad_one_is_named() -> None:
    spec = WorkerSpec(1, 4, 5, 6, 7, 1234, 2)
    assert WorkerSpec.decode(spec.encode()) == spec
    with pytest.raises(ValueError, match="not a worker specification"):
        WorkerSpec.decode("1,2,x")


def _store_one(port: int) -> None:
    # an upload: the process has started its worker threads by the time it answers
    client = Client(port)
    client.login()
    host, data_port = client.pasv()
    code, _ = client.cmd("STOR /probe")
    assert code == 150
    with socket.create_connection((host, data_port)) as data:
        data.sendall(b"x" * 1000)
    assert client.until_final()[-1][0] == 226
    client.close()


def _all_on(pid: int, cpus: set[int]) -> bool:
    """Whether every thread of ``pid`` may run on exactly ``cpus``."""
    return cpus_of_threads(pid) == {frozenset(cpus)}


def test_each_worker_keeps_a_core_of_its_own(serve, root) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    srv = serve("--root", str(root), "--anonymous-write", "--workers", "2")
    assert srv.proc is not None
    wait_for(lambda: len(children(srv.proc.pid)) == 2, what="two workers")
    _store_one(srv.port)
    kids = children(srv.proc.pid)
    if len(allowed) >= 2:
        # every thread of a worker on one CPU, the two workers on different ones
        assert sorted(k for k in allowed[:2] if any(_all_on(kid, {k}) for kid in kids)) == allowed[:2]
    else:
        assert all(_all_on(kid, set(allowed)) for kid in kids)


def test_a_single_process_keeps_one_core_of_a_small_machine_or_the_one_it_is_given(serve, root) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    alone = serve("--root", str(root), "--anonymous-write")
    _store_one(alone.port)
    assert alone.proc is not None
    assert _all_on(alone.proc.pid, {allowed[-1]} if len(allowed) <= 2 else set(allowed))
    alone.stop()
    unpinned = serve("--root", str(root), "--anonymous-write", "--cpu-affinity", "off")
    _store_one(unpinned.port)
    assert unpinned.proc is not None and _all_on(unpinned.proc.pid, set(allowed))
    unpinned.stop()
    cpu = allowed[0]
    pinned = serve("--root", str(root), "--anonymous-write", "--cpu-affinity", str(cpu), "-v")
    _store_one(pinned.port)
    assert pinned.proc is not None and _all_on(pinned.proc.pid, {cpu})
    assert f"on CPU {cpu}" in pinned.log.read_text()
