"""A coroutine started from a timer, only if it is still wanted when the timer fires."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any


class LateTask:
    """A coroutine started only if it is still wanted ``delay`` seconds from now.

    An upload's markers are first due after an interval most small files
    never reach: a task made for each upload and cancelled unrun cost a task
    creation, a cancellation and two turns of the event loop per file; a
    timer costs a few microseconds.
    """

    def __init__(self, delay: float, start: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._start = start
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(delay, self._run)

    def _run(self) -> None:
        self._timer = None
        self._task = asyncio.get_running_loop().create_task(self._start())

    async def stop(self) -> None:
        """Cancel the timer, or the task it started; idempotent."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
