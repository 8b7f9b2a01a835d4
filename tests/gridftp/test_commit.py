"""The server's committer: uploads of several sessions completed together, each waiter told its own outcome."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from transfercore.errors import StorageError
from transfercore.gridftp.commit import Committer
from transfercore.groupcommit import CommitPolicy


class FakeWriter:
    def __init__(self, name: str, fail: bool = False) -> None:
        self.name = name
        self.fail = fail
        self.completed = False

    def complete(self) -> None:
        self.completed = True


class BatchingDriver:
    """Records each batch; the first batch is held until released, so others queue behind it."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release_first = threading.Event()

    def complete_batch(self, writers, verify=None):
        if not self.batches:
            assert self.release_first.wait(10)
        self.batches.append([w.name for w in writers])
        out = []
        for w in writers:
            if w.fail:
                out.append(StorageError(f"cannot sync {w.name}"))
            else:
                w.completed = True
                out.append(None)
        return out


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def committer_for(driver, policy=None):
    pool = ThreadPoolExecutor(4)

    async def blocking(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    return Committer(driver, blocking, policy or CommitPolicy(linger=0.05)), pool


def test_uploads_finishing_while_a_batch_commits_share_the_next_one():
    driver = BatchingDriver()
    committer, pool = committer_for(driver)
    writers = [FakeWriter(f"w{i}") for i in range(5)]

    async def main():
        tickets = [committer.ticket() for _ in writers]
        first = asyncio.create_task(tickets[0].commit(writers[0], 10))
        # nobody else has finished yet, but four run: the first waits its linger, then commits alone
        while not committer.logic.committing:
            await asyncio.sleep(0.005)
        rest = [asyncio.create_task(t.commit(w, 10)) for t, w in zip(tickets[1:], writers[1:], strict=True)]
        await asyncio.sleep(0.05)
        assert not any(r.done() for r in rest), "a 226 before its batch was durable"
        driver.release_first.set()
        await asyncio.gather(first, *rest)

    try:
        run(main())
    finally:
        pool.shutdown()
    assert driver.batches == [["w0"], ["w1", "w2", "w3", "w4"]]
    assert all(w.completed for w in writers)


def test_each_waiter_gets_its_own_outcome():
    driver = BatchingDriver()
    driver.release_first.set()
    committer, pool = committer_for(driver)
    good, bad = FakeWriter("good"), FakeWriter("bad", fail=True)

    async def main():
        a, b = committer.ticket(), committer.ticket()
        results = await asyncio.gather(a.commit(good, 1), b.commit(bad, 1), return_exceptions=True)
        return results

    try:
        ok, failed = run(main())
    finally:
        pool.shutdown()
    assert ok is None
    assert isinstance(failed, StorageError) and "bad" in str(failed)
    assert driver.batches == [["good", "bad"]]


def test_a_released_ticket_stops_others_waiting_for_it():
    driver = BatchingDriver()
    driver.release_first.set()
    committer, pool = committer_for(driver, CommitPolicy(linger=5.0))

    async def main():
        a, b = committer.ticket(), committer.ticket()
        task = asyncio.create_task(a.commit(FakeWriter("a"), 1))
        await asyncio.sleep(0.05)
        assert not task.done()  # waits for b, which still receives
        b.release()  # b failed: a is committed at once, not after 5 s
        await asyncio.wait_for(task, 2)
        b.release()  # idempotent

    try:
        run(main())
    finally:
        pool.shutdown()
    assert driver.batches == [["a"]]
    assert committer.logic.running == 0


def test_large_objects_and_drivers_without_batches_complete_alone():
    driver = BatchingDriver()
    committer, pool = committer_for(driver, CommitPolicy(alone_from=100))
    big = FakeWriter("big")

    class Plain:  # no complete_batch of its own
        pass

    from transfercore.contract import Driver

    Plain.complete_batch = Driver.complete_batch  # type: ignore[attr-defined]
    plain_committer, pool2 = committer_for(Plain())
    small = FakeWriter("small")

    async def main():
        await committer.ticket().commit(big, 100)
        await plain_committer.ticket().commit(small, 1)

    try:
        run(main())
    finally:
        pool.shutdown()
        pool2.shutdown()
    assert big.completed and small.completed
    assert driver.batches == [], "neither went through a batch"
    assert not plain_committer.enabled


def test_a_ticket_commits_once():
    driver = BatchingDriver()
    driver.release_first.set()
    committer, pool = committer_for(driver)

    async def main():
        t = committer.ticket()
        await t.commit(FakeWriter("x"), 1)
        with pytest.raises(RuntimeError):
            await t.commit(FakeWriter("y"), 1)

    try:
        run(main())
    finally:
        pool.shutdown()
