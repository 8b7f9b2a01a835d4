"""One file by ranges in threads of this process: resume from durable records, one publish, CRC32C combined."""

from __future__ import annotations

import os
import random
from pathlib import Path

import crc32c
import pytest

from transfercore.campaign import rangecopy
from transfercore.campaign.rangecopy import LocalRanges, RangeTask, copy_by_ranges, plan
from transfercore.crccombine import combine, combine_all
from transfercore.errors import SourceChanged, TransferAborted
from transfercore.ranges import ByteRange, RangeSet
from transfercore.registry import open_location

SIZE = 3 * 1024 * 1024 + 12345
BLOCK = 64 * 1024


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(random.Random(3).randbytes(SIZE))
    return path


def test_crc32c_of_pieces_combines_into_the_whole():
    data = random.Random(1).randbytes(200_000)
    rnd = random.Random(2)
    for _ in range(40):
        cut = rnd.randint(0, len(data))
        assert combine(crc32c.crc32c(data[:cut]), crc32c.crc32c(data[cut:]), len(data) - cut) == crc32c.crc32c(data)
    cuts = sorted(rnd.sample(range(1, len(data)), 9))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    assert combine_all((crc32c.crc32c(p), len(p)) for p in pieces) == crc32c.crc32c(data)
    assert combine_all((crc32c.crc32c(p), len(p)) for p in pieces[::-1]) != crc32c.crc32c(data)


def test_plan_covers_the_file():
    assert plan(10, count=3) == [ByteRange(0, 4), ByteRange(4, 8), ByteRange(8, 10)]
    assert plan(10, range_size=4) == plan(10, count=3)
    assert plan(0, count=3) == [ByteRange(0, 0)]
    spans = plan(SIZE, count=7)
    assert spans[0].start == 0 and spans[-1].end == SIZE
    assert all(a.end == b.start for a, b in zip(spans, spans[1:], strict=False))


def test_copy_by_ranges_is_identical_and_reports_the_whole_crc32c(source, tmp_path):
    dst = tmp_path / "out.bin"
    events = []
    result = copy_by_ranges(str(source), str(dst), LocalRanges(3), count=5, block=BLOCK, marker_bytes=256 * 1024,
                            on_event=events.append)
    assert dst.read_bytes() == source.read_bytes()
    assert result.checksum == f"{crc32c.crc32c(source.read_bytes()):08x}"
    assert result.written == SIZE and result.resumed == 0
    assert [e["event"] for e in events].count("range-done") == 5
    assert sorted(os.listdir(tmp_path)) == ["big.bin", "out.bin"]


def test_a_dead_attempt_s_durable_bytes_are_never_written_again(source, tmp_path):
    dst = tmp_path / "out.bin"
    data = source.read_bytes()
    driver = open_location(str(dst)).driver
    span = plan(SIZE, count=4)[2]
    # An attempt that made part of its range durable, wrote more, and died.
    dead = driver.open_range_write(str(dst), SIZE, span, "dead")
    dead.write(span.start, data[span.start:span.start + 300_000])
    kept = dead.durable()
    dead.write(span.start + 300_000, data[span.start + 300_000:span.start + 400_000])
    del dead  # abandoned: no finish, no abort
    result = copy_by_ranges(str(source), str(dst), LocalRanges(2), count=4, block=BLOCK)
    assert dst.read_bytes() == data
    assert result.resumed == kept.total() == 300_000
    assert result.written == SIZE - 300_000
    (third,) = [r for r in result.ranges if r.index == 2]
    assert third.resumed == 300_000 and third.written == span.length - 300_000


def test_a_task_run_again_resumes_from_its_own_durable_marker(source, tmp_path):
    dst = tmp_path / "out.bin"
    url, dst_url = str(open_location(str(source)).location), str(open_location(str(dst)).location)
    info = os.stat(source)
    facts = (SIZE, info.st_mtime_ns, f"{info.st_dev}:{info.st_ino}")
    task = RangeTask(url, dst_url, SIZE, 0, SIZE, 0, facts, BLOCK, 512 * 1024)
    reads = 0
    real = rangecopy._cancel

    class StopAfter:
        def is_set(self) -> bool:
            nonlocal reads
            reads += 1
            return reads > 20  # 20 blocks copied, 2 markers taken

        def clear(self) -> None:
            pass

    rangecopy._cancel = StopAfter()  # type: ignore[assignment]
    try:
        with pytest.raises(TransferAborted):
            task()
    finally:
        rangecopy._cancel = real
    durable = open_location(str(dst)).driver.durable_ranges(str(dst), SIZE)
    # markers after 8 and 16 blocks; the 4 blocks written after the last one are not durable
    assert durable == RangeSet.span(0, 16 * BLOCK)
    again = task()
    assert again.resumed == durable.total() and again.written == SIZE - durable.total()
    open_location(str(dst)).driver.publish_ranges(str(dst), SIZE)
    assert dst.read_bytes() == source.read_bytes()
    assert again.crc == crc32c.crc32c(source.read_bytes())


def test_a_record_claiming_more_than_the_partial_file_holds_is_refused_and_rewritten(source, tmp_path):
    dst = tmp_path / "out.bin"
    data = source.read_bytes()
    driver = open_location(str(dst)).driver
    last = plan(SIZE, count=2)[1]
    w = driver.open_range_write(str(dst), SIZE, last, "w")
    w.write(last.start, data[last.start:last.end])
    w.finish()
    partial = [p for p in tmp_path.iterdir() if p.name.endswith(".tcpart")]
    assert len(partial) == 1
    os.truncate(partial[0], last.start + 10)  # the storage lost the end of what the record claims
    assert driver.durable_ranges(str(dst), SIZE) == RangeSet()
    result = copy_by_ranges(str(source), str(dst), LocalRanges(2), count=2, block=BLOCK)
    assert result.resumed == 0 and result.written == SIZE
    assert dst.read_bytes() == data


def test_a_source_changed_mid_copy_is_not_published(source, tmp_path):
    dst = tmp_path / "out.bin"

    def runner(tasks, done):
        out = LocalRanges(2)(tasks[:1], done)
        os.utime(source, ns=(1, 1))
        return out + LocalRanges(2)(tasks[1:], done)

    with pytest.raises(SourceChanged):
        copy_by_ranges(str(source), str(dst), runner, count=3, block=BLOCK)
    assert not dst.exists()


def test_the_cli_splits_a_file_above_the_threshold(source, tmp_path, capsys):
    from transfercore.cli import main

    dst = tmp_path / "cli.bin"
    code = main(["copy", str(source), str(dst), "--ranges-above", "1M", "--range-size", "1M", "--json",
                 "--journal", str(tmp_path / "j.db")])
    assert code == 0
    out = capsys.readouterr().out
    assert out.count('"range-done"') == 4
    assert dst.read_bytes() == source.read_bytes()
    small = tmp_path / "small.bin"
    code = main(["copy", str(source), str(small), "--ranges-above", "1G", "--json", "--journal",
                 str(tmp_path / "j.db")])
    assert code == 0 and '"range-done"' not in capsys.readouterr().out
    assert small.read_bytes() == source.read_bytes()


def test_a_tree_copy_cuts_its_files_above_the_threshold_into_ranges(source, tmp_path, monkeypatch):
    from transfercore.cli import main

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    os.replace(source, tree / "d" / "big.bin")
    (tree / "small.txt").write_bytes(b"small")
    seen: list[tuple[int, int]] = []
    real = RangeTask.__call__

    def spy(self):  # type: ignore[no-untyped-def]
        seen.append((self.start, self.end))
        return real(self)

    monkeypatch.setattr(RangeTask, "__call__", spy)
    out = tmp_path / "out"
    code = main(["copy", "-r", str(tree), str(out), "--ranges-above", "2M", "--range-size", "1M", "--json",
                 "--whole-file-max", "1M",
                 "--journal", str(tmp_path / "j.db")])
    assert code == 0
    assert (out / "d" / "big.bin").read_bytes() == (tree / "d" / "big.bin").read_bytes()
    assert (out / "small.txt").read_bytes() == b"small"
    assert sorted(seen) == [(r.start, r.end) for r in plan(SIZE, range_size=1024 * 1024)]
    assert os.stat(out / "d" / "big.bin").st_mtime_ns == os.stat(tree / "d" / "big.bin").st_mtime_ns
    assert [p.name for p in (out / "d").iterdir()] == ["big.bin"]


def test_an_empty_file_by_ranges(tmp_path):
    src, dst = tmp_path / "empty", tmp_path / "out"
    src.write_bytes(b"")
    result = copy_by_ranges(str(src), str(dst), LocalRanges(2), count=3)
    assert dst.read_bytes() == b"" and result.checksum == "00000000"
    assert sorted(os.listdir(tmp_path)) == ["empty", "out"]


def test_a_range_stored_wrong_is_caught_by_its_read_back_and_nothing_is_published(source, tmp_path, monkeypatch):
    from transfercore_posix.multiwriter import PosixRangeWriter

    from transfercore.errors import ChecksumMismatch

    real = PosixRangeWriter.read_durable

    def flipped(self, offset, buffer):  # type: ignore[no-untyped-def]
        real(self, offset, buffer)
        if offset == 0:
            buffer[0] ^= 1  # what the storage returns differs from what was written

    monkeypatch.setattr(PosixRangeWriter, "read_durable", flipped)
    dst = tmp_path / "out.bin"
    with pytest.raises(ChecksumMismatch, match="stored wrong"):
        copy_by_ranges(str(source), str(dst), LocalRanges(2), count=3, block=BLOCK)
    assert not dst.exists()


def test_a_finished_copy_run_again_is_left_alone_unless_forced(source, tmp_path):
    dst = tmp_path / "out.bin"
    copy_by_ranges(str(source), str(dst), LocalRanges(2), count=3, block=BLOCK)
    before = os.stat(dst)
    events = []
    again = copy_by_ranges(str(source), str(dst), LocalRanges(2), count=3, block=BLOCK, on_event=events.append)
    assert again.written == 0 and [e["event"] for e in events] == ["up-to-date"]
    assert os.stat(dst).st_ino == before.st_ino
    forced = copy_by_ranges(str(source), str(dst), LocalRanges(2), count=3, block=BLOCK, force=True)
    assert forced.written == SIZE and dst.read_bytes() == source.read_bytes()
    with open(dst, "r+b") as f:
        f.write(bytes([source.read_bytes()[0] ^ 0xFF]))  # the destination differs: copied again
    changed = copy_by_ranges(str(source), str(dst), LocalRanges(2), count=3, block=BLOCK)
    assert changed.written == SIZE and dst.read_bytes() == source.read_bytes()
