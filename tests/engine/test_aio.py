"""The asyncio form: an awaitable run, an async iterator of events, cancellation that can be resumed."""

import asyncio

import pytest

import transfercore
from transfercore.journal import TransferState

SIZE = 2 << 20
OPTIONS = transfercore.TransferOptions(block_size=64 << 10, marker_policy=transfercore.MarkerPolicy(bytes=256 << 10))


def _stored(url: str) -> bytes:
    endpoint = transfercore.open_location(url)
    with endpoint.driver.open_read(endpoint.path) as reader:
        return reader.read(0, reader.size)


def test_embedded_from_asyncio_cancelled_and_resumed(tmp_path, src_file):
    src, dst = src_file(SIZE), "mock://aio/obj?slow=0.01"

    async def service(journal: transfercore.Journal) -> transfercore.TransferResult:
        transfer = transfercore.AsyncTransfer(src, dst, OPTIONS, journal=journal)
        task = asyncio.create_task(transfer.run())
        async for event in transfer.events():
            if isinstance(event, transfercore.Marker) and event.durable_bytes:
                task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert journal.get(transfer.transfer_id).state is TransferState.INTERRUPTED
        return await transfercore.copy_async(src, dst, OPTIONS, journal=journal)

    with transfercore.Journal(tmp_path / "journal.sqlite") as journal:
        result = asyncio.run(service(journal))
    assert 0 < result.bytes_resumed < SIZE and result.bytes_sent == SIZE - result.bytes_resumed
    assert _stored(dst) == open(src, "rb").read()


def test_events_end_with_the_run_and_cancel_raises_transfer_aborted(tmp_path, src_file):
    src = src_file(SIZE, seed=2)

    async def service() -> list[str]:
        transfer = transfercore.AsyncTransfer(src, "mock://aio/two?slow=0.01", OPTIONS)
        task = asyncio.create_task(transfer.run())
        kinds = []
        async for event in transfer.events():
            kinds.append(event.kind)
            if event.kind == "start":
                transfer.cancel()
        with pytest.raises(transfercore.TransferAborted) as info:
            await task
        # A library's words: nothing about a command to run again.
        assert "command" not in str(info.value) and info.value.hint == transfercore.errors.RESUME_HINT
        with pytest.raises(transfercore.TransferCoreError, match="runs once"):
            await transfer.run()
        return kinds

    kinds = asyncio.run(service())
    assert kinds[0] == "start" and kinds[-1] == "interrupted" and "done" not in kinds


def test_copy_async_returns_the_verified_result(tmp_path, src_file):
    src = src_file(300_000, seed=3)
    result = asyncio.run(transfercore.copy_async(src, str(tmp_path / "out.bin")))
    assert result.size == 300_000 and result.checksum and (tmp_path / "out.bin").read_bytes() == open(src, "rb").read()


def test_the_command_line_puts_its_own_words_on_a_resumable_error(capsys):
    from transfercore.cli import report_error

    report_error(transfercore.TransferAborted("the transfer was cancelled", hint=transfercore.errors.RESUME_HINT))
    err = capsys.readouterr().err
    assert err == "transfercore: error: the transfer was cancelled (run the same command again to resume)\n"
    report_error(transfercore.errors.ChecksumMismatch("CRC32C", "1", "2"))
    assert "copy it again with --no-resume" in capsys.readouterr().err
