"""Where a campaign's tasks run: the seam between the campaign and a pool.

The runner hands out picklable, stateless tasks (:mod:`.tasks`) and waits
for their results; it never shares memory with a task.  :class:`LocalPool`
runs them in threads of this process.  A cluster executor (for example a
Dask ``distributed`` client) offers the same three calls.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Collection
from typing import Any, Protocol

from . import tasks


class Executor(Protocol):
    def submit(self, task: Callable[[], Any]) -> Any:
        """Start ``task()``; return a future with ``result()``."""

    def wait(self, futures: Collection[Any], timeout: float) -> tuple[set[Any], set[Any]]:
        """Block until one future is done or ``timeout`` passes: (done, not done)."""

    def cancel(self) -> None:
        """Ask running tasks to stop soon, keeping their durable state."""

    def shutdown(self) -> None:
        """Wait for running tasks and release the workers."""


class LocalPool:
    """Tasks in ``workers`` threads of this process (the default executor)."""

    def __init__(self, workers: int) -> None:
        tasks.reset_cancel()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tree")

    def submit(self, task: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        return self._pool.submit(task)

    def wait(self, futures: Collection[Any], timeout: float) -> tuple[set[Any], set[Any]]:
        done, pending = concurrent.futures.wait(futures, timeout=timeout, return_when=concurrent.futures.FIRST_COMPLETED)
        return set(done), set(pending)

    def cancel(self) -> None:
        tasks.cancel_all()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
        tasks.close_endpoints()
