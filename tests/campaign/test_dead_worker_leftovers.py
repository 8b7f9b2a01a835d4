"""What a dead worker left of a large file is removed by the run that
completes the file, not left hidden until the next run.

On a cluster, a worker process that dies while writing a large file leaves
its partial file; the task's retry runs in another process, whose listing of
the directory (taken once a while, for earlier partial files) may predate the
dead worker's file.  Reproduced here in one process: an executor that runs
each task at once, and that, before the second large file's task, leaves a
partial file of it as a dead worker would, after the first task's listing."""

from __future__ import annotations

import concurrent.futures
import os

from transfercore.campaign import CampaignStore, TreeCopy
from transfercore.campaign.runner import TreeOptions
from transfercore.campaign.tasks import LargeFileTask


class DeadWorkerBefore:
    """Runs each task when submitted; before the task of ``victim`` runs, a
    partial file of it (no resume record) appears, as a killed worker leaves it."""

    def __init__(self, destination: str, victim: str) -> None:
        self.destination = destination
        self.victim = victim
        self.left: list[str] = []

    def submit(self, task):  # noqa: ANN001, ANN201
        if isinstance(task, LargeFileTask) and task.file.rel == self.victim:
            directory, _, name = os.path.join(self.destination, self.victim).rpartition("/")
            stale = os.path.join(directory, f".{name}.0123456789abcdef.tcpart")
            with open(stale, "wb") as fh:
                fh.write(b"half of it")
            self.left.append(stale)
        future: concurrent.futures.Future[object] = concurrent.futures.Future()
        try:
            future.set_result(task())
        except Exception as exc:  # noqa: BLE001 - as a pool reports it
            future.set_exception(exc)
        return future

    def wait(self, futures, timeout):  # noqa: ANN001, ANN201
        return set(futures), set()

    def cancel(self) -> None:
        pass

    def shutdown(self) -> None:
        pass


def test_a_dead_workers_partial_file_is_gone_when_the_run_ends(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "big").mkdir(parents=True)
    first, second = os.urandom(300_000), os.urandom(300_000)
    (src / "big" / "a.bin").write_bytes(first)
    (src / "big" / "b.bin").write_bytes(second)
    (src / "small.txt").write_bytes(b"small")
    executor = DeadWorkerBefore(str(dst), "big/b.bin")
    with CampaignStore(tmp_path / "j.db") as store:
        result = TreeCopy(f"posix://{src}", f"posix://{dst}", TreeOptions(whole_file_max=64 * 1024), store,
                          executor=executor).run()
    assert result.failed == [] and result.copied == 3
    assert executor.left, "the dead worker's partial file was never made: the test did not run its case"
    assert (dst / "big" / "a.bin").read_bytes() == first and (dst / "big" / "b.bin").read_bytes() == second
    assert sorted(os.listdir(dst / "big")) == ["a.bin", "b.bin"]  # no hidden partial file left
