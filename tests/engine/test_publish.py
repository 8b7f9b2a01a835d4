"""Nothing reaches the destination's final name unless it is the source, whole and verified."""

import os
import time

import pytest

from transfercore.engine import MarkerPolicy, TransferOptions, copy
from transfercore.errors import SourceChanged
from transfercore.journal import TransferState

OPTIONS = TransferOptions(streams=2, block_size=64 * 1024, marker_policy=MarkerPolicy(interval=None, bytes=256 * 1024))
SIZE = 2 * 1024 * 1024


def _in_place_same_size_mtime_restored(path):
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(1000)
        f.write(b"XXXXXXXX")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _after_a_clock_tick(path):
    """Return once the kernel's file times have moved past ``path``'s change time: they
    advance in coarse ticks (a few ms), and a rewrite in the same tick as the file's
    creation would leave its change time where it was."""
    probe = f"{path}.tick"
    deadline = time.monotonic() + 5
    try:
        while time.monotonic() < deadline:
            with open(probe, "ab"):
                os.utime(probe)
            if os.stat(probe).st_mtime_ns > os.stat(path).st_ctime_ns:
                return
    finally:
        if os.path.exists(probe):
            os.unlink(probe)
    raise AssertionError("the file times did not advance within 5 s")


def _appended(path):
    with open(path, "ab") as f:
        f.write(b"more")


@pytest.mark.parametrize("change", [_in_place_same_size_mtime_restored, _appended], ids=["in-place", "appended"])
@pytest.mark.parametrize("checksum", ["crc32c", None], ids=["verified", "unverified"])
def test_a_source_changed_during_the_copy_is_never_published(tmp_path, journal, src_file, change, checksum):
    src = src_file(SIZE)
    _after_a_clock_tick(src)
    dst = tmp_path / "out.bin"
    seen = []

    def meddle(event):
        seen.append(event)
        if event.kind == "marker" and not event.final and len([e for e in seen if e.kind == "marker"]) == 1:
            change(src)

    import attrs

    with pytest.raises(SourceChanged) as info:
        copy(src, os.fspath(dst), attrs.evolve(OPTIONS, checksum=checksum), journal=journal, listeners=[meddle])
    assert not dst.exists()
    message = str(info.value)
    # One statement, and it is true: nothing published, the partial discarded, no talk of resuming.
    assert "nothing was published and the partial copy was discarded" in message
    assert "resume" not in message
    assert not list(tmp_path.glob(".out.bin.*"))
    (error,) = [e for e in seen if e.kind == "error"]
    assert not error.resumable and error.durable_bytes == 0
    # noticed at the next marker, not after the last byte
    assert "verify" not in [e.kind for e in seen] and not [e for e in seen if e.kind == "marker" and e.final]
    entry = journal.find(f"posix://{src}", f"posix://{dst}")
    assert entry.state is TransferState.FAILED and not entry.marker
    # The next run copies the new version whole.
    result = copy(src, os.fspath(dst), OPTIONS, journal=journal)
    assert result.bytes_resumed == 0 and dst.read_bytes() == open(src, "rb").read()


def test_a_journal_marker_behind_the_destinations_record_resumes_the_record(tmp_path, journal, src_file):
    from transfercore.ranges import RangeSet
    from transfercore.registry import open_location

    src = src_file(SIZE)
    dst = tmp_path / "out.bin"
    data = open(src, "rb").read()
    driver = open_location(f"posix://{dst}").driver
    writer = driver.open_write(str(dst), SIZE)
    writer.write(0, data[: SIZE // 2])
    record = writer.durable()
    writer.abort()
    # The journal lost the marker (say its WAL was damaged after an older row was checkpointed).
    from transfercore.engine.identity import source_identity

    info = open_location(f"posix://{src}").driver.stat(src)
    with open_location(f"posix://{src}").driver.open_read(src) as reader:
        identity = source_identity(info, reader)
    entry = journal.begin(f"posix://{src}", f"posix://{dst}", identity, {})
    journal.finish(entry.id, TransferState.FAILED, message="disk full")
    seen = []
    result = copy(src, os.fspath(dst), OPTIONS, journal=journal, listeners=[seen.append])
    (resumed,) = [e for e in seen if e.kind == "resumed"]
    assert resumed.marker == record and "behind the destination's record" in resumed.note
    assert result.bytes_sent == SIZE - record.total() and dst.read_bytes() == data
    assert RangeSet.span(0, SIZE // 2) == record


def test_a_writer_of_the_wrong_size_is_aborted_and_the_run_recorded_failed(tmp_path, journal, src_file, monkeypatch):
    from transfercore_mock.writer import MockWriter

    from transfercore.errors import TransferCoreError

    aborted = []
    monkeypatch.setattr(MockWriter, "size", property(lambda self: self._size + 1))
    original = MockWriter.abort
    monkeypatch.setattr(MockWriter, "abort", lambda self: (aborted.append(self), original(self))[1])
    src = src_file(100_000)
    with pytest.raises(TransferCoreError, match="destination writer has size 100001"):
        copy(src, "mock://sizes/o", OPTIONS, journal=journal)
    assert aborted
    assert journal.find(f"posix://{src}", "mock://sizes/o").state is TransferState.FAILED


def test_verification_reports_its_progress(tmp_path, journal, src_file):
    import attrs

    src = src_file(SIZE)
    seen = []
    # The append example driver cannot read back before publishing: the whole object is read after.
    copy(src, f"append://{tmp_path}/out", attrs.evolve(OPTIONS, progress_interval=1e-9), journal=journal,
         listeners=[seen.append])
    kinds = [e.kind for e in seen]
    progress = [e for e in seen if e.kind == "verify-progress"]
    assert progress and kinds.index("verify") < kinds.index("verify-progress") < kinds.index("done")
    counts = [e.bytes_verified for e in progress]
    assert counts == sorted(counts) and 0 < counts[-1] <= SIZE and all(e.size == SIZE for e in progress)


def test_a_finished_copy_whose_source_was_rewritten_in_place_is_not_up_to_date(tmp_path, journal, src_file):
    src = src_file(SIZE)
    dst = tmp_path / "out.bin"
    copy(src, os.fspath(dst), OPTIONS, journal=journal)
    again = copy(src, os.fspath(dst), OPTIONS, journal=journal)
    assert again.up_to_date and again.bytes_sent == 0
    # Outside the sampled blocks, same size, mtime put back: only the change time tells.
    st = os.stat(src)
    with open(src, "r+b") as f:
        f.seek(300_000)
        f.write(b"rewritten")
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    seen = []
    result = copy(src, os.fspath(dst), OPTIONS, journal=journal, listeners=[seen.append])
    assert not result.up_to_date and result.bytes_sent == SIZE
    (restart,) = [e for e in seen if e.kind == "restart"]
    assert "change time moved" in restart.reason
    assert dst.read_bytes() == open(src, "rb").read()


def test_a_final_marker_short_of_the_size_fails_instead_of_waiting_for_the_read_back(journal, src_file, monkeypatch):
    # As HPSS PIO failing in its last Execute after every write was accepted: the
    # read-back can never reach the end, so the copy fails (resumably) at once.
    from transfercore_mock.writer import MockWriter

    from transfercore.errors import NotFound, StorageError
    from transfercore.ranges import RangeSet
    from transfercore.registry import open_location

    original = MockWriter.durable
    monkeypatch.setattr(MockWriter, "durable", lambda self: original(self) & RangeSet.span(0, SIZE // 2))
    src = src_file(SIZE)
    started = time.monotonic()
    with pytest.raises(StorageError, match=f"made only {SIZE // 2} of {SIZE} bytes durable"):
        copy(src, "mock://short/o", OPTIONS, journal=journal)
    assert time.monotonic() - started < 20
    with pytest.raises(NotFound):
        open_location("mock://short/o").driver.stat("/o")
    entry = journal.find(f"posix://{src}", "mock://short/o")
    assert entry.state is TransferState.FAILED and entry.marker == RangeSet.span(0, SIZE // 2)
