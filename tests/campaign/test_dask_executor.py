"""The Dask executor from Python, on an in-process ``LocalCluster`` (Dask's inproc transport; its HTTP servers on 127.0.0.1)."""

from __future__ import annotations

import functools
import subprocess
import time

import pytest
from distributed import Client, LocalCluster

from transfercore.campaign import CampaignStore, FileState, TreeCopy, TreeOptions
from transfercore.campaign.dask_executor import ClusterError, DaskExecutor, rerunnable
from transfercore.campaign.tasks import BatchTask, FileSpec, LargeFileTask
from transfercore.engine import TransferOptions
from transfercore.testing.loopback import free_port
from transfercore.testing.trees import TreeSpec, make_tree

#: Dask's HTTP servers run even without a dashboard: on 127.0.0.1, like every server of the tests.
LOOPBACK = {"dashboard_address": "127.0.0.1:0", "worker_dashboard_address": "127.0.0.1:0"}


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, **LOOPBACK) as cluster, \
            Client(cluster, set_as_default=False) as c:
        yield c


def _hold(started) -> None:  # type: ignore[no-untyped-def]
    """Take a worker thread for a second, saying when it has it."""
    started.touch()
    time.sleep(1.0)


def spec(rel: str, size: int = 3) -> FileSpec:
    return FileSpec(rel, size, 0, 0o644, "id")


def test_every_task_goes_out_ready_to_find_an_earlier_attempts_state():
    batch = BatchTask("posix:///a", "posix:///b", (spec("x"), spec("y")))
    assert [s.started for s in rerunnable(batch).files] == [True, True]  # type: ignore[attr-defined]
    large = LargeFileTask("posix:///a", "posix:///b", spec("z", 10 << 20), TransferOptions())
    assert rerunnable(large).file.started  # type: ignore[attr-defined]
    assert not batch.files[0].started  # the runner's own task is left as it was


def test_a_tree_copied_through_a_client_you_made(client, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    files, _ = make_tree(src, TreeSpec(files=150, max_size=8 * 1024, large_files=1, large_size=1 << 20, seed=3))
    executor = DaskExecutor(client)
    assert executor.threads() == 2
    with CampaignStore(tmp_path / "journal.db") as store:
        options = TreeOptions(files=executor.threads(), whole_file_max=256 * 1024)
        result = TreeCopy(str(src), str(dst), options, store, executor=executor).run()
        counts = store.counts(store.campaigns()[0])
    assert result.ok and result.copied == files
    assert counts.files == {FileState.COMPLETE.value: files}
    diff = subprocess.run(["diff", "-r", "--no-dereference", str(src), str(dst)], capture_output=True, text=True)
    assert diff.returncode == 0, diff.stdout[:2000]
    executor.shutdown()
    assert client.status == "running"  # a client you made stays yours


def test_cancel_stops_queued_tasks_and_reports_their_files_unfinished(client, tmp_path):
    executor = DaskExecutor(client, check=False)
    busy = [executor.submit(functools.partial(_hold, tmp_path / f"busy{i}")) for i in range(2)]  # both threads taken
    queued = executor.submit(BatchTask(f"posix://{tmp_path}/s", f"posix://{tmp_path}/d", (spec("a"), spec("b"))))
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"busy{i}").exists() for i in range(2)):
        assert time.monotonic() < deadline, "the busy tasks never started"
        executor.wait(busy, 0.01)  # also hands the submitted tasks to the scheduler
    executor.cancel()
    done: set = set()
    deadline = time.monotonic() + 30
    while queued not in done and time.monotonic() < deadline:
        done |= executor.wait([*busy, queued], 1.0)[0]
    assert queued in done
    results = queued.result()
    assert [(r.rel, r.state) for r in results] == [("a", FileState.STARTED), ("b", FileState.STARTED)]
    assert not (tmp_path / "d").exists()


def test_no_scheduler_at_the_address_is_a_clear_error():
    started = time.monotonic()
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:") as info:
        DaskExecutor.connect(f"tcp://127.0.0.1:{free_port()}", timeout=2)
    assert "tcp://HOST:PORT" in info.value.hint
    assert time.monotonic() - started < 20


def test_a_scheduler_without_workers_is_a_clear_error():
    with LocalCluster(n_workers=0, processes=False, **LOOPBACK) as cluster, \
            Client(cluster, set_as_default=False) as c, pytest.raises(ClusterError, match="has no workers"):
        DaskExecutor(c)
