"""One upload per destination: the next waits for the holder, then is refused naming it."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

import pytest

from transfercore.gridftp.errors import ReplyError
from transfercore.gridftp.sharedstate import SharedRegion
from transfercore.gridftp.uploadlock import SharedUploadLocks, UploadLocks


async def _wait(done: Callable[[], bool], timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done() and loop.time() < deadline:
        await asyncio.sleep(0.005)
    return done()


def test_a_second_upload_waits_for_the_first_to_end():
    locks = UploadLocks()

    async def main() -> list[str]:
        order: list[str] = []
        await locks.acquire("posix:///d/a", "first", 1.0, _wait, "/d/a")

        async def second() -> None:
            await locks.acquire("posix:///d/a", "second", 5.0, _wait, "/d/a")
            order.append("second holds")
            locks.release("posix:///d/a")

        task = asyncio.create_task(second())
        await asyncio.sleep(0.05)
        assert not task.done()  # still waiting
        order.append("first releases")
        locks.release("posix:///d/a")
        await asyncio.wait_for(task, 5)
        # another destination is never held up
        await locks.acquire("posix:///d/b", "third", 0.0, _wait, "/d/b")
        return order

    assert asyncio.run(main()) == ["first releases", "second holds"]


def test_the_wait_is_bounded_and_the_reply_names_the_holder():
    locks = UploadLocks()

    async def main() -> None:
        await locks.acquire("k", "an upload from 10.0.0.7", 1.0, _wait, "/d/a")
        with pytest.raises(ReplyError) as err:
            await locks.acquire("k", "other", 0.05, _wait, "/d/a")
        assert err.value.code == 450
        assert "Another upload of /d/a is in progress (an upload from 10.0.0.7" in str(err.value)

    asyncio.run(main())


# -- the same across the worker processes of one server ------------------------------------


def test_a_destination_held_in_one_worker_is_waited_for_in_another(tmp_path):
    region = SharedRegion.create()
    first, second = SharedUploadLocks(region, 0), SharedUploadLocks(region, 1)

    async def main() -> None:
        await first.acquire("posix:///d/a", "an upload from 10.0.0.7", 1.0, _wait, "/d/a")
        with pytest.raises(ReplyError) as err:
            await second.acquire("posix:///d/a", "other", 0.05, _wait, "/d/a")
        assert err.value.code == 450
        assert "(an upload from 10.0.0.7" in str(err.value)  # the holder's name crosses too

        task = asyncio.create_task(second.acquire("posix:///d/a", "other", 5.0, _wait, "/d/a"))
        await asyncio.sleep(0.05)
        assert not task.done()
        first.release("posix:///d/a")
        await asyncio.wait_for(task, 5)  # woken by the record going, not by its timeout
        # and now the first worker is the one kept out
        with pytest.raises(ReplyError):
            await first.acquire("posix:///d/a", "again", 0.05, _wait, "/d/a")
        second.release("posix:///d/a")
        await first.acquire("posix:///d/a", "again", 0.05, _wait, "/d/a")

    asyncio.run(main())
    region.close()


def test_a_dead_workers_uploads_are_forgotten():
    region = SharedRegion.create()
    dead, alive = SharedUploadLocks(region, 0), SharedUploadLocks(region, 1)
    assert dead.try_acquire("k", "a worker that then dies") is None
    assert alive.try_acquire("k", "next") is not None
    region.forget_worker(0)  # what the supervisor does before it starts the dead worker's successor
    assert alive.try_acquire("k", "next") is None
    region.close()


def test_two_processes_never_hold_one_destination_together():
    # real processes, contending: each holds the key, checks nobody else does, releases
    region = SharedRegion.create()
    marker = region.map  # the last byte of the region is unused: a flag "someone holds k"
    flag = len(marker) - 1
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            code = _contend(SharedUploadLocks(region, 1), marker, flag)
        finally:
            os._exit(code)
    mine = _contend(SharedUploadLocks(region, 0), marker, flag)
    _, status = os.waitpid(pid, 0)
    region.close()
    assert mine == 0 and os.waitstatus_to_exitcode(status) == 0, "both processes held the destination at once"


def _contend(locks: SharedUploadLocks, marker, flag: int) -> int:
    held = 0
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        if locks.try_acquire("k", f"pid {os.getpid()}") is None:
            if marker[flag]:
                return 1
            marker[flag] = 1
            time.sleep(0.0002)
            marker[flag] = 0
            locks.release("k")
            held += 1
    return 0 if held else 2
