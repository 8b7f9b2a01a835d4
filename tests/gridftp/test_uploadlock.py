"""One upload per destination: the next waits for the holder, then is refused naming it."""

from __future__ import annotations

import asyncio
import threading

import pytest

from transfercore.gridftp.errors import ReplyError
from transfercore.gridftp.uploadlock import UploadLocks


async def _wait(event: threading.Event, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not event.is_set() and loop.time() < deadline:
        await asyncio.sleep(0.005)
    return event.is_set()


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
