"""The engine against the mock driver, with faults injected at many points."""

import os
import threading

import attrs
import pytest

from transfercore.engine import MarkerPolicy, Transfer, TransferOptions, copy
from transfercore.errors import (
    ChecksumMismatch,
    IsADirectory,
    LocationError,
    NotFound,
    StorageError,
    TransferAborted,
    TransferCoreError,
)
from transfercore.journal import TransferState
from transfercore.ranges import RangeSet
from transfercore.registry import open_location


def put_mock(url: str, data: bytes) -> None:
    """Store a complete object in the mock store named by ``url``."""
    endpoint = open_location(url)
    writer = endpoint.driver.open_write(endpoint.path, len(data))
    if data:
        writer.write(0, data)
    writer.complete()


def get_mock(url: str) -> bytes:
    endpoint = open_location(url)
    with endpoint.driver.open_read(endpoint.path) as reader:
        return reader.read(0, reader.size)


def payload(size: int, seed: int = 1) -> bytes:
    import random

    return random.Random(seed).randbytes(size)


def crash(url: str) -> None:
    open_location(url).driver.simulate_crash()


MiB = 1 << 20
SMALL = TransferOptions(streams=3, block_size=64 * 1024, marker_policy=MarkerPolicy(interval=None, bytes=256 * 1024))


class Recorder:
    def __init__(self):
        self.events = []

    def __call__(self, event):
        self.events.append(event)

    def kinds(self):
        return [e.kind for e in self.events]

    def of(self, kind):
        return [e for e in self.events if e.kind == kind]


def run(src, dst, journal, options=SMALL, **kw):
    rec = Recorder()
    result = copy(src, dst, options, journal=journal, listeners=[rec], **kw)
    return result, rec


def run_failing(src, dst, journal, options=SMALL, exc=TransferCoreError):
    rec = Recorder()
    with pytest.raises(exc) as info:
        copy(src, dst, options, journal=journal, listeners=[rec])
    return info.value, rec


# -- plain copies in every direction and restart model ------------------------------------------


@pytest.mark.parametrize("model", ["ranges", "prefix", "none"])
def test_posix_to_mock(tmp_path, journal, src_file, model):
    src = src_file(1_000_003)
    dst = f"mock://store/out?model={model}"
    result, rec = run(src, dst, journal)
    assert get_mock(dst) == open(src, "rb").read()
    assert result.bytes_sent == 1_000_003 and result.bytes_resumed == 0
    assert rec.kinds()[0] == "start" and rec.kinds()[-1] == "done"
    assert "verify" in rec.kinds()
    entry = journal.find(result.source, result.destination)
    assert entry.state is TransferState.DONE and entry.checksum == result.checksum
    if model == "none":
        assert rec.of("marker") == []
    else:
        markers = [m.ranges for m in rec.of("marker")]
        assert all(b.contains(a) for a, b in zip(markers, markers[1:], strict=False)), "markers must be monotonic"
        assert markers[-1] == RangeSet.span(0, 1_000_003) and rec.of("marker")[-1].final


@pytest.mark.parametrize("model", ["ranges", "prefix"])
def test_mock_to_posix(tmp_path, journal, model):
    data = payload(700_001)
    put_mock(f"mock://in/obj?model={model}", data)
    dst = tmp_path / "out.bin"
    result, _ = run(f"mock://in/obj?model={model}", os.fspath(dst), journal)
    assert dst.read_bytes() == data
    assert result.checksum is not None


def test_mock_to_mock_between_stores(journal):
    data = payload(300_000)
    put_mock("mock://a/x", data)
    run("mock://a/x", "mock://b/y?model=prefix", journal)
    assert get_mock("mock://b/y") == data


@pytest.mark.parametrize("alg", ["md5", "adler32", "crc32c", "sha256"])
@pytest.mark.parametrize("read_back", [True, False])
def test_every_checksum_algorithm_verifies(journal, src_file, alg, read_back):
    src = src_file(200_000)
    dst = f"mock://s/o?read_back={str(read_back).lower()}"
    result, rec = run(src, dst, journal, attrs.evolve(SMALL, checksum=alg))
    from transfercore.checksums import digest_bytes

    assert result.checksum == digest_bytes(alg, open(src, "rb").read())
    # A destination that reads back is verified before publishing, even where the storage
    # computes the algorithm (its checksum is of the published object); one that cannot
    # is asked for its own checksum after publishing.
    assert rec.of("verify")[0].method == ("read-back" if read_back else "storage")


def test_checksum_none_skips_verification(journal, src_file):
    result, rec = run(src_file(1000), "mock://s/o", journal, attrs.evolve(SMALL, checksum=None))
    assert result.checksum is None and "verify" not in rec.kinds()


def test_empty_object(journal, src_file):
    result, rec = run(src_file(0), "mock://s/empty", journal)
    assert get_mock("mock://s/empty") == b""
    assert result.size == 0 and rec.kinds()[-1] == "done"


def test_without_a_journal_it_still_copies(src_file):
    src = src_file(5000)
    result = copy(src, "mock://s/o", SMALL)
    assert result.transfer_id is None and get_mock("mock://s/o") == open(src, "rb").read()


# -- markers --------------------------------------------------------------------------------


def test_markers_follow_the_byte_policy_and_reach_the_journal(journal, src_file):
    src = src_file(2 * MiB)
    seen = []

    def check_journal(event):
        if event.kind == "marker":
            entry = journal.find(f"posix://{src}", "mock://s/o")
            seen.append((event.ranges, entry.marker))

    options = attrs.evolve(SMALL, marker_policy=MarkerPolicy(interval=None, bytes=256 * 1024))
    rec = Recorder()
    t = Transfer(src, "mock://s/o", options, journal=journal)
    t.add_listener(rec)
    t.add_listener(check_journal)
    t.run()
    markers = rec.of("marker")
    # 2 MiB in steps of 256 KiB: several periodic markers plus the final one.
    assert len(markers) >= 4
    # Each marker was in the journal before listeners heard of it.
    assert all(event_ranges == stored for event_ranges, stored in seen)
    progress = rec.of("progress")
    assert all(p.durable_bytes <= p.bytes_done for p in progress)


def test_time_policy_takes_markers_while_slow(journal, src_file):
    src = src_file(40 * 64 * 1024)
    options = attrs.evolve(SMALL, streams=2, marker_policy=MarkerPolicy(interval=0.05, bytes=None))
    _, rec = run(src, "mock://s/o?slow=0.01", journal, options)
    assert len(rec.of("marker")) >= 3


def test_no_periodic_markers_with_the_none_policy(journal, src_file):
    _, rec = run(src_file(MiB), "mock://s/o", journal, attrs.evolve(SMALL, marker_policy=MarkerPolicy.none()))
    assert [m.final for m in rec.of("marker")] == [True]


# -- faults and resume ---------------------------------------------------------------------


@pytest.mark.parametrize("model", ["ranges", "prefix"])
@pytest.mark.parametrize("fail_after", [1, 100_000, 700_000, 999_999])
def test_write_failure_then_resume(journal, src_file, model, fail_after):
    src = src_file(1_000_000)
    dst = f"mock://s/o?model={model}"
    err, rec = run_failing(src, f"{dst}&fail_after={fail_after}", journal, exc=StorageError)
    assert "injected" in str(err)
    entry = journal.find(f"posix://{src}", "mock://s/o")
    assert entry.state is TransferState.FAILED and "injected" in entry.message
    failed = rec.of("error")[0]
    assert failed.resumable and failed.durable_bytes == entry.marker.total()
    # A marker was saved after the failure: the bytes written before it are not lost.
    assert entry.marker.total() >= (fail_after // SMALL.block_size - SMALL.streams) * SMALL.block_size
    if model == "prefix":
        assert entry.marker == entry.marker.prefix()
    result, rec2 = run(src, dst, journal)
    assert get_mock(dst) == open(src, "rb").read()
    assert result.bytes_sent == 1_000_000 - entry.marker.total()
    assert result.bytes_resumed == entry.marker.total()
    if entry.marker:
        assert rec2.of("resumed")[0].bytes == entry.marker.total()
    assert journal.find(f"posix://{src}", "mock://s/o").state is TransferState.DONE


def test_repeated_faults_on_the_same_url_make_progress_each_run(journal, src_file):
    src = src_file(1_000_000)
    dst = "mock://s/o?fail_after=300000"  # re-armed for every opened URL
    durable = []
    for _ in range(10):
        try:
            run(src, dst, journal)
            break
        except StorageError:
            durable.append(journal.find(f"posix://{src}", "mock://s/o").marker.total())
    assert get_mock(dst) == open(src, "rb").read()
    assert len(durable) >= 2 and durable == sorted(durable) and len(set(durable)) == len(durable)


def test_durability_failure_then_resume(journal, src_file):
    src = src_file(MiB)
    run_failing(src, "mock://s/o?fail_durable=2", journal, exc=StorageError)
    dst = "mock://s/o"
    entry = journal.find(f"posix://{src}", "mock://s/o")
    assert entry.state is TransferState.FAILED
    result, rec = run(src, dst, journal)
    assert get_mock(dst) == open(src, "rb").read()


@pytest.mark.parametrize("corrupt", [False, True])
def test_power_loss_between_runs(journal, src_file, corrupt):
    src = src_file(1_500_000)
    flag = "&corrupt=true" if corrupt else ""
    dst = f"mock://s/o?fail_after=900000{flag}"
    run_failing(src, dst, journal, exc=StorageError)
    dst = "mock://s/o"
    before = journal.find(f"posix://{src}", "mock://s/o").marker
    assert before.total() > 0
    crash(dst)  # every byte not made durable is lost (or scrambled)
    result, rec = run(src, dst, journal)
    assert rec.of("resumed")[0].marker == before
    assert get_mock(dst) == open(src, "rb").read()
    assert result.bytes_sent == 1_500_000 - before.total()


@pytest.mark.parametrize("read_back", [True, False])
def test_power_loss_with_a_lying_driver_is_caught_by_the_checksum(journal, src_file, read_back):
    src = src_file(MiB)
    dst = f"mock://s/o?lie=early-marker&corrupt=true&read_back={str(read_back).lower()}"
    run_failing(src, f"{dst}&fail_after=600000", journal, exc=StorageError)
    crash(dst)
    err, rec = run_failing(src, dst, journal, exc=ChecksumMismatch)
    driver = open_location("mock://s/o").driver
    if read_back:
        # Read back before publishing: the wrong object never gets its name, the partial is kept.
        assert "nothing was published; the partial object was kept for inspection" in str(err)
        assert driver.partial("/o")
    else:
        # A driver that cannot read back is verified once published: the wrong object is
        # removed, and the message says so.
        assert "so it was removed" in str(err)
    with pytest.raises(NotFound):
        driver.stat("/o")
    entry = journal.find(f"posix://{src}", "mock://s/o")
    assert entry.state is TransferState.MISMATCH
    assert not rec.of("error")[0].resumable
    # The next run does not trust the old marker: it sends everything again.
    result, rec3 = run(src, "mock://s/o", journal)
    assert "mismatch" in rec3.of("restart")[0].reason
    assert result.bytes_sent == MiB
    assert get_mock("mock://s/o") == open(src, "rb").read()


def test_a_marker_with_bytes_never_written_is_refused(journal, src_file):
    src = src_file(MiB)
    err, rec = run_failing(src, "mock://s/o?lie=wide-marker", journal)
    assert "never written" in str(err)
    # The lying marker never reached the journal.
    entry = journal.find(f"posix://{src}", "mock://s/o")
    assert entry.marker == (rec.of("marker")[-1].ranges if rec.of("marker") else RangeSet())
    assert entry.state is TransferState.FAILED


def test_rejected_marker_starts_from_zero_and_says_why(journal, src_file):
    src = src_file(MiB)
    run_failing(src, "mock://s/o?fail_after=500000", journal, exc=StorageError)
    assert journal.find(f"posix://{src}", "mock://s/o").marker.total() > 0
    from transfercore.registry import open_location

    open_location("mock://s/o").driver.discard_partial("/o")  # the storage lost its record
    result, rec = run(src, "mock://s/o", journal)
    (restart,) = rec.of("restart")
    assert restart.reason.startswith("the destination rejected the restart marker")
    assert rec.of("resumed") == [] and result.bytes_sent == MiB
    assert result.restart_reason == restart.reason
    assert get_mock("mock://s/o") == open(src, "rb").read()


def test_source_changed_between_runs(journal, src_file):
    src = src_file(MiB)
    run_failing(src, "mock://s/o?fail_after=500000", journal, exc=StorageError)
    with open(src, "r+b") as f:
        f.seek(MiB // 2)
        f.write(b"changed")
    result, rec = run(src, "mock://s/o", journal)
    (restart,) = rec.of("restart")
    assert "source changed" in restart.reason
    assert result.bytes_sent == MiB
    assert get_mock("mock://s/o") == open(src, "rb").read()


def test_source_grown_between_runs_names_the_sizes(journal, src_file):
    src = src_file(MiB)
    run_failing(src, "mock://s/o?fail_after=500000", journal, exc=StorageError)
    with open(src, "ab") as f:
        f.write(b"more")
    _, rec = run(src, "mock://s/o", journal)
    (restart,) = rec.of("restart")
    assert "source changed" in restart.reason and f"{MiB} -> {MiB + 4}" in restart.reason
    assert get_mock("mock://s/o") == open(src, "rb").read()


def test_no_resume_sends_everything(journal, src_file):
    src = src_file(MiB)
    run_failing(src, "mock://s/o?fail_after=500000", journal, exc=StorageError)
    result, rec = run(src, "mock://s/o", journal, attrs.evolve(SMALL, resume=False))
    assert "--no-resume" in rec.of("restart")[0].reason
    assert result.bytes_sent == MiB and result.bytes_resumed == 0


def test_cancel_keeps_the_durable_state(journal, src_file):
    src = src_file(2 * MiB)
    dst = "mock://s/o?slow=0.01"
    transfer = Transfer(src, dst, attrs.evolve(SMALL, streams=2, progress_interval=0.02), journal=journal)
    rec = Recorder()
    transfer.add_listener(rec)

    def stop_after_progress(event):
        if event.kind == "progress" and event.bytes_sent > 256 * 1024:
            transfer.cancel()

    transfer.add_listener(stop_after_progress)
    with pytest.raises(TransferAborted):
        transfer.run()
    entry = journal.find(f"posix://{src}", "mock://s/o")
    assert entry.state is TransferState.INTERRUPTED and entry.marker.total() > 0
    result, rec2 = run(src, dst, journal)
    assert rec2.of("resumed")[0].bytes == entry.marker.total()
    assert get_mock(dst) == open(src, "rb").read()


def test_a_failing_listener_stops_the_transfer_and_keeps_state(journal, src_file):
    src = src_file(MiB)

    def boom(event):
        if event.kind == "marker":
            raise RuntimeError("listener broke")

    with pytest.raises(RuntimeError):
        copy(src, "mock://s/o", SMALL, journal=journal, listeners=[boom])
    entry = journal.find(f"posix://{src}", "mock://s/o")
    assert entry.state is TransferState.FAILED and entry.marker.total() > 0


def test_destination_corrupted_after_a_marker_is_a_mismatch_and_never_published(tmp_path, journal, src_file):
    # The destination is read back as stored, in step with the markers: a byte
    # changed on the storage after it was made durable is caught, before the
    # object gets its final name.
    # Four times the marker bytes: the streams must wait for a marker before
    # the end, so a non-final marker always comes.
    src = src_file(1_000_000)
    dst = tmp_path / "out.bin"

    def corrupt(event):
        if event.kind == "marker" and not event.final and event.ranges.contains(1234):
            (partial,) = tmp_path.glob(".out.bin.*.tcpart")
            with open(partial, "r+b") as f:
                f.seek(1234)
                f.write(b"X")

    rec = Recorder()
    with pytest.raises(ChecksumMismatch) as info:
        copy(src, os.fspath(dst), SMALL, journal=journal, listeners=[corrupt, rec])
    assert "CRC32C checksum mismatch" in str(info.value)
    assert not dst.exists()
    assert len(list(tmp_path.glob(".out.bin.*.tcpart"))) == 1  # kept for inspection
    assert journal.find(f"posix://{src}", f"posix://{dst}").state is TransferState.MISMATCH
    assert rec.of("verify")[0].method == "read-back"
    # The next run does not trust the corrupted partial object: it sends everything again.
    result, rec2 = run(src, os.fspath(dst), journal)
    assert "mismatch" in rec2.of("restart")[0].reason
    assert result.bytes_sent == 1_000_000 and dst.read_bytes() == open(src, "rb").read()


def test_destination_corrupted_in_the_last_marker_is_a_mismatch(tmp_path, journal, src_file):
    # The bytes made durable only by the final marker are read back too.
    src = src_file(300_000)
    dst = tmp_path / "out.bin"

    def corrupt(event):
        if event.kind == "marker" and event.final:
            (partial,) = tmp_path.glob(".out.bin.*.tcpart")
            with open(partial, "r+b") as f:
                f.seek(299_999)
                f.write(b"X")

    with pytest.raises(ChecksumMismatch):
        copy(src, os.fspath(dst), SMALL, journal=journal, listeners=[corrupt])
    assert not dst.exists()


def test_resumed_bytes_are_read_back_from_the_destination(tmp_path, journal, src_file):
    # A resumed run verifies the whole object as stored, the kept part included.
    # Most of the object is still to come when the cancel is asked for: with
    # 1 MB, on a busy machine the streams wrote the rest before the cancel was
    # seen, and the copy rightly completed.
    src = src_file(16_000_000)
    dst = tmp_path / "out.bin"
    stop = Transfer(src, os.fspath(dst), SMALL, journal=journal)
    stop.add_listener(lambda e: stop.cancel() if e.kind == "marker" and e.ranges.prefix_end() >= 500_000 else None)
    with pytest.raises(TransferAborted):
        stop.run()
    kept = journal.find(f"posix://{src}", f"posix://{dst}").marker
    assert kept.prefix_end() >= 500_000
    (partial,) = tmp_path.glob(".out.bin.*.tcpart")
    with open(partial, "r+b") as f:
        f.seek(100)
        f.write(b"X")  # inside the kept prefix: only a read-back of the destination sees it
    rec = Recorder()
    with pytest.raises(ChecksumMismatch):
        copy(src, os.fspath(dst), SMALL, journal=journal, listeners=[rec])
    assert rec.of("resumed")[0].marker.contains(100)


# -- bad input ------------------------------------------------------------------------------


def test_missing_source(journal, tmp_path):
    with pytest.raises(NotFound, match="does not exist"):
        copy(os.fspath(tmp_path / "nope"), "mock://s/o", journal=journal)


def test_source_is_a_directory(journal, tmp_path):
    with pytest.raises(IsADirectory, match="is a directory"):
        copy(os.fspath(tmp_path), "mock://s/o", journal=journal)


def test_missing_destination_directory(journal, src_file, tmp_path):
    with pytest.raises(NotFound) as info:
        copy(src_file(10), os.fspath(tmp_path / "no" / "such" / "file"), journal=journal)
    assert "directory" in str(info.value)
    (entry,) = journal.entries()
    assert entry.state is TransferState.FAILED


def test_same_object(journal, src_file):
    src = src_file(10)
    with pytest.raises(LocationError, match="same object"):
        copy(src, src, journal=journal)


def test_a_transfer_runs_once(src_file):
    t = Transfer(src_file(10), "mock://s/o")
    t.run()
    with pytest.raises(TransferCoreError, match="runs once"):
        t.run()


def test_concurrent_cancel_from_another_thread(journal, src_file):
    src = src_file(MiB)
    t = Transfer(src, "mock://s/o?slow=0.01", attrs.evolve(SMALL, streams=1), journal=journal)
    timer = threading.Timer(0.1, t.cancel)
    timer.start()
    with pytest.raises(TransferAborted):
        t.run()
    timer.join()
