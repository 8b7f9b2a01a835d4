"""Many range writers of one file: records per writer, the union read back, one publish."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading

import pytest
from transfercore_posix import multiwriter, names
from transfercore_posix.driver import PosixDriver

from transfercore.errors import InvalidWrite, RestartRejected
from transfercore.ranges import ByteRange, RangeSet

SIZE = 300_000
DATA = os.urandom(SIZE)
A, B, C = ByteRange(0, 100_000), ByteRange(100_000, 200_000), ByteRange(200_000, SIZE)


def write_span(writer, span: ByteRange, block: int = 16_384) -> None:
    for start in range(span.start, span.end, block):
        end = min(start + block, span.end)
        for piece in RangeSet.span(start, end) - writer.resumed:
            writer.write(piece.start, DATA[piece.start:piece.end])


def test_three_writers_union_and_publish(driver: PosixDriver, target: str) -> None:
    writers = [driver.open_range_write(target, SIZE, span, f"w{i}") for i, span in enumerate((A, B, C))]
    for w, span in zip(writers, (A, B, C), strict=True):
        write_span(w, span)
    assert writers[0].finish() == RangeSet((A,))
    assert driver.durable_ranges(target, SIZE) == RangeSet((A,))
    for w in writers[1:]:
        w.finish()
    assert driver.durable_ranges(target, SIZE) == RangeSet.span(0, SIZE)
    seen = []
    driver.publish_ranges(target, SIZE, verify=lambda r: seen.append(r.read(0, SIZE)))
    assert seen == [DATA]
    with open(target, "rb") as f:
        assert f.read() == DATA
    assert sorted(os.listdir(os.path.dirname(target))) == ["obj.bin"]  # every record gone


def test_a_killed_writer_keeps_what_it_made_durable_and_a_new_writer_resumes_it(driver, target):
    dead = driver.open_range_write(target, SIZE, A, "dead")
    dead.write(0, DATA[:40_000])
    assert dead.durable() == RangeSet.span(0, 40_000)
    dead.write(40_000, DATA[40_000:50_000])  # never made durable: the writer is abandoned here
    other = driver.open_range_write(target, SIZE, B, "other")
    write_span(other, B)
    other.durable()
    # another process (a fresh driver) sees the union
    assert PosixDriver().durable_ranges(target, SIZE) == RangeSet.of((0, 40_000), (100_000, 200_000))
    again = PosixDriver().open_range_write(target, SIZE, A, "again")
    assert again.resumed == RangeSet.span(0, 40_000)
    with pytest.raises(InvalidWrite):
        again.write(0, DATA[:10])  # durable by the dead writer: never written twice
    write_span(again, A)
    again.finish()
    last = driver.open_range_write(target, SIZE, C, "last")
    write_span(last, C)
    last.finish()
    other.finish()
    with pytest.raises(InvalidWrite):
        dead.finish()  # its span was never all written
    driver.publish_ranges(target, SIZE)
    with open(target, "rb") as f:
        assert f.read() == DATA


def test_publish_clears_the_temporary_record_of_a_writer_killed_before_its_rename(driver, target):
    w = driver.open_range_write(target, SIZE, ByteRange(0, SIZE), "w")
    write_span(w, ByteRange(0, SIZE))
    w.finish()
    directory, name = os.path.split(target)
    with open(os.path.join(directory, names.ranges_temp_name(name)), "wb") as f:
        f.write(b"{torn")
    assert multiwriter.inspect(directory, name).durable == RangeSet.span(0, SIZE)
    driver.publish_ranges(target, SIZE)
    assert os.listdir(directory) == [name]


def test_publish_is_refused_while_a_range_is_missing(driver, target):
    w = driver.open_range_write(target, SIZE, A, "a")
    write_span(w, A)
    w.finish()
    with pytest.raises(InvalidWrite, match="missing 100000-300000"):
        driver.publish_ranges(target, SIZE)
    assert not os.path.exists(target)


def test_a_writer_cannot_write_outside_its_range(driver, target):
    w = driver.open_range_write(target, SIZE, B, "b")
    with pytest.raises(InvalidWrite, match="outside writer b's range"):
        w.write(99_999, b"xx")
    w.abort()


def test_a_record_claiming_more_than_the_file_holds_is_refused(driver, target):
    w = driver.open_range_write(target, SIZE, C, "c")
    write_span(w, C)
    w.finish()
    directory, name = os.path.split(target)
    anchor = multiwriter.load_anchor(directory, name)
    assert anchor is not None
    os.truncate(os.path.join(directory, names.partial_name(name, anchor.token)), 250_000)
    state = multiwriter.inspect(directory, name)
    assert state.durable == RangeSet()
    assert state.refused and "the partial file holds 250000" in state.refused[0][1]
    again = driver.open_range_write(target, SIZE, C, "c2")
    assert again.resumed == RangeSet()  # rewritten, not believed
    again.abort()


def test_a_record_refused_for_claiming_past_the_cut_is_not_believed_once_the_file_grows_again(driver, target):
    w = driver.open_range_write(target, SIZE, B, "b")
    write_span(w, B)
    w.finish()
    directory, name = os.path.split(target)
    anchor = multiwriter.load_anchor(directory, name)
    assert anchor is not None
    os.truncate(os.path.join(directory, names.partial_name(name, anchor.token)), 150_000)
    assert driver.durable_ranges(target, SIZE) == RangeSet()  # the rerun plans with the cut file
    # Another range's writer grows the file past the cut: B's bytes 150000-200000
    # are a hole of zeros now, and B's old record must not be believed again.
    c = driver.open_range_write(target, SIZE, C, "c")
    write_span(c, C)
    c.finish()
    assert driver.durable_ranges(target, SIZE) == RangeSet((C,))
    again = driver.open_range_write(target, SIZE, B, "b2")
    assert again.resumed == RangeSet()
    again.abort()


def test_an_edited_record_is_refused(driver, target):
    w = driver.open_range_write(target, SIZE, A, "a")
    w.write(0, DATA[:1000])
    w.durable()
    w.abort()
    directory, name = os.path.split(target)
    path = os.path.join(directory, names.range_record_name(name, "a", A.start, A.end))
    doc = json.loads(open(path).read())
    doc["ranges"] = "0-100000"
    with open(path, "w") as f:
        f.write(json.dumps(doc))
    state = multiwriter.inspect(directory, name)
    assert state.durable == RangeSet()
    assert "torn or edited" in state.refused[0][1]


def test_a_record_claiming_outside_its_range_is_refused(tmp_path):
    record = multiwriter.WriterRecord(writer="x", size=SIZE, token="0" * 16, ino=1, span=A,
                                      ranges=RangeSet.span(0, 150_000))
    with pytest.raises(multiwriter.Refused, match="outside its own range"):
        multiwriter.decode_record(multiwriter.encode_record(record))


def test_another_size_is_rejected_until_discarded(driver, target):
    w = driver.open_range_write(target, SIZE, A, "a")
    w.abort()
    with pytest.raises(RestartRejected, match="started with size 300000"):
        driver.open_range_write(target, SIZE + 1, A, "b")
    with pytest.raises(RestartRejected):
        driver.durable_ranges(target, SIZE + 1)
    driver.discard_partial(target)
    assert os.listdir(os.path.dirname(target)) == []
    driver.open_range_write(target, SIZE + 1, A, "b").abort()


def test_hidden_names_are_recognised():
    for entry in (".f.tcpart.ranges", ".f.tcpart.ranges.w-0-100-r3-ab_c", ".f.tcpart.ranges.tmp-0123abcd"):
        assert names.is_hidden(entry)
        assert names.leftover_stem(entry) == "f"
        assert names.leftover_pattern("f").fullmatch(entry)
    assert not names.is_hidden("f.tcpart.ranges")
    assert not names.is_hidden(".f.tcpart.rangesx")
    assert not names.is_hidden(".f.tcpart.ranges.w-x-100-r3")


def test_a_writer_reads_only_the_records_of_ranges_overlapping_its_own(driver, target, monkeypatch):
    for i, span in enumerate((A, B, C)):
        w = driver.open_range_write(target, SIZE, span, f"w{i}")
        write_span(w, span)
        w.finish()
    read: list[str] = []
    real = multiwriter._read_small
    monkeypatch.setattr(multiwriter, "_read_small", lambda path: read.append(os.path.basename(path)) or real(path))
    again = driver.open_range_write(target, SIZE, B, "again")
    assert again.resumed == RangeSet((B,))
    again.abort()
    records = [r for r in read if ".w-" in r]
    assert records == [os.path.basename(names.range_record_name("obj.bin", "w1", B.start, B.end))]
    assert driver.durable_ranges(target, SIZE) == RangeSet.span(0, SIZE)


def test_listing_and_sweep_ignore_and_clear_range_state(driver, tmp_path):
    target = str(tmp_path / "big")
    w = driver.open_range_write(target, SIZE, A, "a")
    w.write(0, DATA[:10])
    w.durable()
    w.abort()
    assert [i.name for i in driver.list(str(tmp_path))] == []
    assert driver.sweep_partials(str(tmp_path), ["big"]) == (1, 0)
    assert os.listdir(tmp_path) == []


def _race(target: str, span: tuple[int, int], wid: str, barrier, out) -> None:  # type: ignore[no-untyped-def]
    barrier.wait(30)
    w = PosixDriver().open_range_write(target, SIZE, ByteRange(*span), wid)
    write_span(w, ByteRange(*span))
    w.finish()
    out.put(w.partial_path)


def test_writers_racing_to_create_the_object_share_one_partial_file(tmp_path):
    target = str(tmp_path / "race.bin")
    spans = [(0, 100_000), (100_000, 200_000), (200_000, SIZE)]
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(target, s, f"p{i}", barrier, out)) for i, s in enumerate(spans)]
    for p in procs:
        p.start()
    try:
        paths = [out.get(timeout=30) for _ in procs]
    finally:
        for p in procs:
            p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(set(paths)) == 1
    PosixDriver().publish_ranges(target, SIZE)
    with open(target, "rb") as f:
        assert f.read() == DATA
    assert os.listdir(tmp_path) == ["race.bin"]


def test_threads_of_one_process_each_write_a_range(driver, target):
    spans = [ByteRange(s, min(s + 37_000, SIZE)) for s in range(0, SIZE, 37_000)]

    def run(i: int, span: ByteRange) -> None:
        w = driver.open_range_write(target, SIZE, span, f"t{i}")
        write_span(w, span, block=5000)
        w.finish()

    threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(spans)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    driver.publish_ranges(target, SIZE)
    with open(target, "rb") as f:
        assert f.read() == DATA
