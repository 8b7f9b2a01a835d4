"""A tree campaign's tasks on the workers of an existing Dask cluster.

The client (the process running :class:`~.runner.TreeCopy`) keeps the
campaign journal; the workers only run the stateless tasks of :mod:`.tasks`.
Everything about the cluster is Dask's own (see ``docs/scale-out.md``):

* **worker loss**: the scheduler hands the tasks that were running on a
  worker that died to other workers, until a task has seen
  ``distributed.scheduler.allowed-failures`` workers die under it (then its
  future raises ``KilledWorker`` and its files are recorded failed, to be
  retried by the next run);
* **task errors**: ``retries=`` on submit runs a task that raised again
  (the tasks report a file's own failure in their result and raise only for
  what is wrong with the worker, e.g. a driver it cannot import);
* **scheduler loss**: the client cancels every future with
  ``scheduler-connection-lost``; :meth:`DaskExecutor.wait` turns that into
  :class:`ClusterLost`, and the campaign stays resumable from the journal.

Because Dask may run a task a second time, every task is handed out in its
*started* form: it looks for what an earlier attempt left at the destination
(a published file proven equal by its checksum, or a durable restart marker
to resume from) instead of starting from zero.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import TransferAborted, TransferCoreError
from . import tasks
from .model import FileState
from .tasks import BatchTask, FileResult, LargeFileTask

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client, Future

#: Runs of a task that raised (Dask's ``retries=``); worker deaths are counted
#: by the scheduler's ``allowed-failures`` instead.
RETRIES = 2
#: Seconds to wait for the scheduler when connecting.
CONNECT_TIMEOUT = 10.0


class ClusterError(TransferCoreError):
    """The Dask cluster cannot be reached or used."""


class ClusterLost(ClusterError):
    """The client lost its scheduler while tasks were in flight."""


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ClusterError("--scheduler needs Dask's distributed package",
                           hint="install it with: pip install 'transfercore[dask]'") from None
    return distributed


def rerunnable(task: Callable[[], Any]) -> Callable[[], Any]:
    """``task`` as it must run where any attempt may be a second one."""
    if isinstance(task, BatchTask):
        return attrs.evolve(task, files=tuple(attrs.evolve(s, started=True) for s in task.files))
    if isinstance(task, LargeFileTask):
        return attrs.evolve(task, file=attrs.evolve(task.file, started=True))
    return task


def _specs(task: Callable[[], Any]) -> list[tasks.FileSpec]:
    if isinstance(task, BatchTask):
        return list(task.files)
    if isinstance(task, LargeFileTask):
        return [task.file]
    return []


def _run(task: Callable[[], Any]) -> Any:
    return task()


def _worker_probe() -> dict[str, Any]:
    """Run on each worker: can it run the campaign's tasks at all?"""
    import transfercore
    from transfercore.registry import installed_names

    return {"version": transfercore.__version__, "drivers": installed_names()}


class TaskHandle:
    """One submitted task: what the runner waits on and reads the result of."""

    def __init__(self, executor: DaskExecutor, task: Callable[[], Any]) -> None:
        self._executor = executor
        #: Set when the executor hands the task to the scheduler (see :meth:`DaskExecutor.wait`).
        self.future: Future | None = None
        self.task = task

    def result(self) -> Any:
        assert self.future is not None, "result() of a task not handed out yet"
        status = self.future.status
        if status == "cancelled":
            if self._executor.cancelled:
                # Stopped on request: the destination keeps whatever durable state it has.
                return aborted(self.task)
            raise self._executor.lost()
        return self.future.result()


class DaskExecutor:
    """The :class:`~.executor.Executor` seam over a ``distributed.Client``.

    ``DaskExecutor(client)`` uses a client you made (and leaves it open);
    :meth:`connect` makes one for a scheduler address and closes it at
    :meth:`shutdown`.
    """

    def __init__(self, client: Client, *, retries: int = RETRIES, own_client: bool = False, check: bool = True) -> None:
        self.client = client
        self.retries = retries
        self._own = own_client
        self._done: queue.SimpleQueue[TaskHandle] = queue.SimpleQueue()
        self._live: set[TaskHandle] = set()
        self._unsent: list[TaskHandle] = []
        self._lock = threading.Lock()
        self.cancelled = False
        info: dict[str, object] = getattr(client, "scheduler_info", lambda: {})()
        self.address = str(info.get("address", "")) or "the scheduler"
        if check:
            self._check_workers()

    @classmethod
    def connect(cls, address: str, *, timeout: float = CONNECT_TIMEOUT, **kwargs: Any) -> DaskExecutor:
        distributed = _import_distributed()
        try:
            client = distributed.Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {address}: {exc}",
                               hint="check the address (tcp://HOST:PORT) and that the scheduler runs") from None
        try:
            return cls(client, own_client=True, **kwargs)
        except BaseException:
            client.close()
            raise

    def _check_workers(self) -> None:
        try:
            found = self.client.run(_worker_probe, on_error="return")
        except Exception as exc:  # noqa: BLE001 - any failure here means the cluster is unusable
            raise ClusterError(f"cannot ask the Dask workers at {self.address}: {exc}",
                               hint="check that the scheduler and its workers run") from None
        if not found:
            raise ClusterError(f"the Dask scheduler at {self.address} has no workers",
                               hint="start workers with: dask worker " + self.address)
        import transfercore

        for worker, answer in found.items():
            if isinstance(answer, BaseException):
                raise ClusterError(f"Dask worker {worker} cannot run transfercore tasks: {answer!r}",
                                   hint="install transfercore and its drivers in the workers' environment")
            if answer["version"] != transfercore.__version__:
                raise ClusterError(f"Dask worker {worker} runs transfercore {answer['version']}, "
                                   f"this client {transfercore.__version__}",
                                   hint="install the same transfercore version on the client and the workers")

    def threads(self) -> int:
        """Task slots of the cluster's workers now (their ``nthreads``, summed)."""
        return sum(self.client.nthreads().values()) or 1

    # -- the seam ------------------------------------------------------------------------

    def submit(self, task: Callable[[], Any]) -> TaskHandle:
        handle = TaskHandle(self, rerunnable(task))
        self._unsent.append(handle)
        return handle

    def _send(self) -> None:
        """Hand the tasks submitted since the last call to the scheduler in
        one graph update (``Client.map``) instead of one ``Client.submit``,
        and so one graph update at the scheduler, per task."""
        if not self._unsent:
            return
        handles, self._unsent = self._unsent, []
        keys = [f"transfercore-{'batch' if isinstance(h.task, BatchTask) else 'file'}-{uuid.uuid4().hex}"
                for h in handles]
        futures = self.client.map(_run, [h.task for h in handles], key=keys, pure=False, retries=self.retries)
        for handle, future in zip(handles, futures, strict=True):
            handle.future = future
            with self._lock:
                self._live.add(handle)
            future.add_done_callback(lambda _f, h=handle: self._done.put(h))

    def wait(self, futures: Collection[Any], timeout: float) -> tuple[set[Any], set[Any]]:
        self._send()
        wanted = set(futures)
        done: set[Any] = set()
        try:
            first = self._done.get(timeout=timeout)
        except queue.Empty:
            first = None
        ready = [first] if first is not None else []
        while True:
            try:
                ready.append(self._done.get_nowait())
            except queue.Empty:
                break
        for handle in ready:
            assert handle.future is not None
            if handle.future.status == "cancelled" and not self.cancelled:
                raise self.lost()
            with self._lock:
                self._live.discard(handle)
            if handle in wanted:
                done.add(handle)
            else:
                self._done.put(handle)  # not asked about this time
        if not done and not self.cancelled and self.client.status not in ("running", "connecting", "newly-created"):
            raise self.lost()
        return done, wanted - done

    def lost(self) -> ClusterLost:
        return ClusterLost(
            f"lost the connection to the Dask scheduler at {self.address} with tasks in flight",
            hint="the campaign is kept: start the scheduler and its workers again and run the same command",
        )

    def cancel(self) -> None:
        """Cancel what has not finished (Dask's ``Client.cancel``).  A task a
        worker is running goes on to its end; its result is dropped, and what
        it made durable is found by the next run."""
        self.cancelled = True
        if self.client.status != "running":
            return  # a lost scheduler has cancelled every future already
        self._send()  # then cancelled with the rest: the runner waits for every handle it holds
        with self._lock:
            live = [h.future for h in self._live if h.future is not None]
        if live:
            try:
                self.client.cancel(live)
            except Exception:  # noqa: BLE001 - a lost scheduler cancels them anyway
                pass

    def shutdown(self) -> None:
        if self._own:
            try:
                self.client.close(timeout=5)
            except Exception:  # noqa: BLE001 - closing is best effort
                pass


def aborted(task: Callable[[], Any]) -> list[FileResult]:
    return [FileResult(s.rel, FileState.STARTED, s.size, error=TransferAborted.__name__,
                       message="the copy was cancelled") for s in _specs(task)]


__all__ = ["ClusterError", "ClusterLost", "DaskExecutor", "TaskHandle", "rerunnable"]
