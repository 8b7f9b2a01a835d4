"""The upload state machine without the server: a fake Globus that records which
thread calls it.  Checks the threading promise (no Python thread calls Globus), that
111 ranges come only from durable(), and that the transfer finishes once, after
complete()."""

from __future__ import annotations

import os
import threading
import time
from typing import Any, TypeVar

import pytest
from cffi import FFI
from transfercore_globus_dsi import glue
from transfercore_globus_dsi.config import parse_config
from transfercore_globus_dsi.session import Session
from transfercore_globus_dsi.upload import Upload

from transfercore.ranges import RangeSet
from transfercore.registry import open_location

T = TypeVar("T")

BLOCK = 64 * 1024


class FakeLib:
    GLOBUS_SUCCESS = 0

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, tuple[Any, ...]]] = []
        self.reads: list[tuple[Any, int]] = []
        self.tc_py_read_cb = object()
        self.tc_py_report_cb = object()
        self.tc_py_report_stopped = object()
        #: the marker timer: handle -> (period, argument), while registered
        self.timers: dict[int, tuple[float, Any]] = {}

    def _rec(self, name: str, *args: Any) -> None:
        self.calls.append((name, threading.get_ident(), args))

    def globus_gridftp_server_register_read(self, op, buf, size, cb, handle):  # type: ignore[no-untyped-def]
        self._rec("register_read", size)
        self.reads.append((buf, size))
        return 0

    def globus_gridftp_server_update_bytes_recvd(self, op, n):  # type: ignore[no-untyped-def]
        self._rec("bytes", n)

    def globus_gridftp_server_update_range_recvd(self, op, off, n):  # type: ignore[no-untyped-def]
        self._rec("range", off, n)

    def globus_gridftp_server_finished_transfer(self, op, result):  # type: ignore[no-untyped-def]
        self._rec("finished", result)

    def tc_periodic_start(self, seconds, func, arg, handle):  # type: ignore[no-untyped-def]
        self._rec("timer_start", seconds)
        handle[0] = 7
        self.timers[7] = (seconds, arg)
        return 0

    def tc_periodic_stop(self, handle, done, arg):  # type: ignore[no-untyped-def]
        self._rec("timer_stop", handle, done)
        del self.timers[handle]
        return 0

    def tc_will_block(self) -> int:
        self._rec("will_block")
        return 0

    def tc_result_text(self, result, buf, n):  # type: ignore[no-untyped-def]
        glue.ffi.memmove(buf, b"connection reset\0", 17)

    def tc_error(self, code, error_code, text):  # type: ignore[no-untyped-def]
        return (code, error_code, text)


@pytest.fixture(autouse=True)
def _small_uploads_tick_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # these uploads are small; what is under test is the durability work of large ones
    from transfercore_globus_dsi import upload

    monkeypatch.setattr(upload, "SMALL_UPLOAD", 0)


def _fake_glue(monkeypatch: pytest.MonkeyPatch, lib: T, cdef: str) -> T:
    """The DSI's C glue replaced by ``lib``, with an ffi that knows the types in ``cdef``."""
    ffi = FFI()
    ffi.cdef(cdef)
    monkeypatch.setattr(glue, "ffi", ffi)
    monkeypatch.setattr(glue, "lib", lib)
    return lib


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeLib:
    return _fake_glue(monkeypatch, FakeLib(), "typedef unsigned char globus_byte_t;")


def _session(url: str) -> Session:
    config = parse_config(url)
    return Session(config, open_location(config.location).driver)


def _reading(upload: Upload, reads: int = 1) -> Upload:
    """``upload`` with ``reads`` buffers of BLOCK registered with the (fake) server, as at its start."""
    upload.block = BLOCK
    upload.pending = reads
    for _ in range(reads):
        buf = glue.ffi.new("globus_byte_t[]", BLOCK)
        upload.buffers.append(buf)
        upload.register(buf, BLOCK)
    return upload


def _spooled(session: Session, path: str) -> Upload:
    """An upload of unknown size (no ALLO) into its spool, reading, its durability work asked for."""
    from transfercore_globus_dsi.recv import _open_spool

    upload = _reading(Upload(session, "op", path, None, _open_spool(session, path, [])))
    upload.start_flusher(0.005)
    return upload


def _feed(upload: Upload, fake: FakeLib, payload: bytes, order: list[int], *, wait_durable_at: int = -1) -> None:
    """Deliver the blocks in ``order`` through the registered buffers, as Globus would;
    before block ``wait_durable_at`` of ``order``, wait (bounded) until the durability
    thread made something durable, so a range reaches the server while data arrive."""
    for i, block in enumerate(order):
        if i == wait_durable_at:
            deadline = time.monotonic() + 10
            while not upload.markers.durable and time.monotonic() < deadline:
                time.sleep(0.005)
        buf, size = fake.reads.pop(0)
        chunk = payload[block * BLOCK : (block + 1) * BLOCK]
        glue.ffi.memmove(buf, chunk, len(chunk))
        upload.on_read(0, buf, len(chunk), block * BLOCK, i == len(order) - 1)
        time.sleep(0.002)
    # after the EOF the server completes the other outstanding reads, empty
    while fake.reads:
        buf, _ = fake.reads.pop(0)
        upload.on_read(0, buf, 0, 0, True)


def test_markers_only_from_durable_and_globus_only_from_its_thread(fake, tmp_path):
    session = _session(f"posix://{tmp_path}")
    payload = os.urandom(40 * BLOCK)
    writer = session.driver.open_write(f"{tmp_path}/u.bin", len(payload), None)
    durable_calls: list[RangeSet] = []
    real_durable = writer.durable

    def spying_durable() -> RangeSet:
        marker = real_durable()
        durable_calls.append(marker)
        return marker

    writer.durable = spying_durable  # type: ignore[method-assign]
    upload = Upload(session, "op", f"{tmp_path}/u.bin", writer)
    _reading(upload, 2)
    upload.start_flusher(0.005)
    order = list(range(40))
    order[3], order[4] = order[4], order[3]  # out of order, as parallel streams deliver
    _feed(upload, fake, payload, order, wait_durable_at=20)
    me = threading.get_ident()
    assert {thread for _, thread, _ in fake.calls} == {me}, "a Python thread called Globus"
    finished = [args for name, _, args in fake.calls if name == "finished"]
    assert finished == [(0,)]
    # every range reported while data arrived came from a durable() result; after the last
    # byte, complete() made the whole object durable and the rest is reported: together they
    # name the file
    names = [name for name, _, _ in fake.calls]
    end = names.index("will_block")
    reported = RangeSet.of(*[(a[0], a[0] + a[1]) for name, _, a in fake.calls if name == "range"])
    assert durable_calls and reported == RangeSet.span(0, len(payload))
    during = RangeSet.of(*[(a[0], a[0] + a[1]) for name, _, a in fake.calls[:end] if name == "range"])
    union = RangeSet()
    for m in durable_calls:
        union = union | m
    assert during and union.contains(during)
    # 112 counts every byte received
    assert sum(a[0] for name, _, a in fake.calls if name == "bytes") == len(payload)
    # finished came after the file was complete and published
    assert (tmp_path / "u.bin").read_bytes() == payload
    # the final flush announced that it blocks
    names = [name for name, _, _ in fake.calls]
    assert names.index("will_block") < names.index("finished")


def test_a_failed_connection_keeps_the_durable_part_and_fails_once(fake, tmp_path):
    session = _session(f"posix://{tmp_path}")
    payload = os.urandom(8 * BLOCK)
    writer = session.driver.open_write(f"{tmp_path}/f.bin", len(payload), None)
    upload = Upload(session, "op", f"{tmp_path}/f.bin", writer)
    _reading(upload)
    for i in range(3):
        b, _ = fake.reads.pop(0)
        glue.ffi.memmove(b, payload[i * BLOCK : (i + 1) * BLOCK], BLOCK)
        upload.on_read(0, b, BLOCK, i * BLOCK, False)
    b, _ = fake.reads.pop(0)
    upload.on_read(7, b, 0, 0, True)  # the data connection broke
    finished = [args for name, _, args in fake.calls if name == "finished"]
    assert len(finished) == 1 and finished[0][0][0] == 451
    assert not (tmp_path / "f.bin").exists()
    # what was written before the break is durable and resumable
    assert session.driver.partial(f"{tmp_path}/f.bin").contains(RangeSet.span(0, 3 * BLOCK))


def test_a_stall_still_reports_durable_ranges_then_nothing_after_the_end(fake, tmp_path):
    """While no data arrive, the Globus timer hands what durable() found to the server;
    after finished_transfer it touches nothing, and only its stop lets the upload go."""
    session = _session(f"posix://{tmp_path}")
    payload = os.urandom(4 * BLOCK)
    writer = session.driver.open_write(f"{tmp_path}/s.bin", len(payload), None)
    upload = Upload(session, "op", f"{tmp_path}/s.bin", writer)
    _reading(upload)
    for i in range(2):
        b, _ = fake.reads.pop(0)
        glue.ffi.memmove(b, payload[i * BLOCK : (i + 1) * BLOCK], BLOCK)
        upload.on_read(0, b, BLOCK, i * BLOCK, False)
    # the data stall: no read callback; the marker thread (started now, so no read callback
    # can hand its ranges over) makes the two blocks durable
    upload.start_flusher(0.01)
    assert list(fake.timers.values()) == [(0.1, upload.handle)]
    wait_until = time.monotonic() + 10
    while time.monotonic() < wait_until:
        with upload.lock:
            if upload.markers.reported.contains(RangeSet.span(0, 2 * BLOCK)):
                break
        time.sleep(0.01)
    else:
        raise AssertionError("durable() found nothing in 10 s")
    assert not [name for name, _, _ in fake.calls if name == "range"], "ranges reached the server outside a Globus callback"
    upload.on_timer()  # the timer fires in a Globus thread
    reported = RangeSet.of(*[(a[0], a[0] + a[1]) for name, _, a in fake.calls if name == "range"])
    assert reported == RangeSet.span(0, 2 * BLOCK)
    # the rest arrives; the upload finishes, the timer is stopped with the release as its done-callback
    for i in range(2, 4):
        b, _ = fake.reads.pop(0)
        glue.ffi.memmove(b, payload[i * BLOCK : (i + 1) * BLOCK], BLOCK)
        upload.on_read(0, b, BLOCK, i * BLOCK, i == 3)
    names = [name for name, _, _ in fake.calls]
    assert names.count("finished") == 1 and names.index("finished") < names.index("timer_stop")
    assert [a for name, _, a in fake.calls if name == "timer_stop"] == [(7, fake.tc_py_report_stopped)]
    assert fake.timers == {}
    # still alive (the stop's done-callback releases it): a late tick must find it, and do nothing
    assert id(upload) in glue._alive
    before = len(fake.calls)
    with upload.lock:
        upload.to_report.append(RangeSet.span(0, 1))
    upload.on_timer()
    assert len(fake.calls) == before, "the timer called Globus after finished_transfer"
    glue.release(upload)  # what the stop's done-callback does
    assert (tmp_path / "s.bin").read_bytes() == payload


def test_a_small_upload_gets_no_durability_work_and_completes_durable(fake, tmp_path, monkeypatch):
    """Below SMALL_UPLOAD: no timer, no durable() while it arrives, no 111 before complete()
    made the whole file durable; then the rest of the file is reported."""
    from transfercore_globus_dsi import upload as upload_mod

    monkeypatch.setattr(upload_mod, "SMALL_UPLOAD", 1 << 20)
    session = _session(f"posix://{tmp_path}")
    payload = os.urandom(4 * BLOCK)
    writer = session.driver.open_write(f"{tmp_path}/small.bin", len(payload), None)
    calls: list[str] = []
    real = writer.durable

    def spying() -> RangeSet:
        calls.append("durable")
        return real()

    writer.durable = spying  # type: ignore[method-assign]
    upload = Upload(session, "op", f"{tmp_path}/small.bin", writer)
    _reading(upload)
    upload.start_flusher(0.001)
    assert fake.timers == {} and not upload.ticking
    _feed(upload, fake, payload, list(range(4)))
    assert calls == []
    names = [name for name, _, _ in fake.calls]
    assert names.count("finished") == 1
    ranges = [(i, a) for i, (name, _, a) in enumerate(fake.calls) if name == "range"]
    assert RangeSet.of(*[(a[0], a[0] + a[1]) for _, a in ranges]) == RangeSet.span(0, len(payload))
    assert all(i > names.index("will_block") for i, _ in ranges), "a 111 before complete()"
    assert (tmp_path / "small.bin").read_bytes() == payload


def test_an_upload_without_allo_is_spooled_in_memory_until_a_marker_is_due(tmp_path) -> None:
    """As in ``transfercore serve`` (one core function opens both): a small upload of unknown
    size never touches the disk on its way (a spool file and its removal per file made a
    pipelined tree, whose uploads come without ALLO, twice as slow); the first durable point
    moves it to its file beside the destination, so a 111 names only bytes on disk."""
    from transfercore_globus_dsi.recv import _open_spool

    root = tmp_path / "root"
    root.mkdir()
    session = _session(f"posix://{root}")
    spool = _open_spool(session, session.path("/a.bin"), [])
    spool.write(0, b"x" * 1000)
    assert spool.in_memory and spool.restartable
    assert list(root.iterdir()) == []
    assert spool.durable() == RangeSet.span(0, 1000)
    assert not spool.in_memory
    assert [p.name.startswith(".tc-spool-") for p in root.iterdir()] == [True, True]  # the spool and its record
    spool.discard()
    assert list(root.iterdir()) == []


def test_an_upload_of_unknown_size_gets_durability_work_only_once_it_is_not_small(fake, tmp_path, monkeypatch):
    """No ALLO (every file of a -pp tree): no durability thread and no marker timer while the
    upload is small, as for a small announced one; once past that size they start, and the
    ranges reported come from the spool's durable(); the timer stops with the upload."""
    from transfercore_globus_dsi import upload as upload_mod

    monkeypatch.setattr(upload_mod, "SMALL_UPLOAD", 4 * BLOCK)
    session = _session(f"posix://{tmp_path}")
    payload = os.urandom(12 * BLOCK)
    small = _spooled(session, f"{tmp_path}/small.bin")
    _feed(small, fake, payload[: 3 * BLOCK], [0, 1, 2])
    assert (tmp_path / "small.bin").read_bytes() == payload[: 3 * BLOCK]
    assert not any(name == "timer_start" for name, _, _ in fake.calls), "a small upload got a marker timer"
    assert not small.ticking and session.flusher._thread is None

    fake.calls.clear()
    large = _spooled(session, f"{tmp_path}/large.bin")
    _feed(large, fake, payload, list(range(12)), wait_durable_at=8)
    names = [name for name, _, _ in fake.calls]
    assert names.count("timer_start") == 1 and names.count("timer_stop") == 1
    assert names.index("timer_start") < names.index("timer_stop")
    reported = RangeSet.of(*[(a[0], a[0] + a[1]) for name, _, a in fake.calls if name == "range"])
    assert reported and RangeSet.span(0, len(payload)).contains(reported)
    assert (tmp_path / "large.bin").read_bytes() == payload
    assert [args for name, _, args in fake.calls if name == "finished"] == [(0,)]


def test_an_upload_of_unknown_size_in_a_closing_session_goes_on_without_markers(fake, tmp_path, monkeypatch, caplog):
    from transfercore_globus_dsi import upload as upload_mod

    monkeypatch.setattr(upload_mod, "SMALL_UPLOAD", 2 * BLOCK)
    session = _session(f"posix://{tmp_path}")
    payload = os.urandom(6 * BLOCK)
    up = _spooled(session, f"{tmp_path}/c.bin")
    session.flusher.close()  # the durability thread cannot take the upload any more
    with caplog.at_level("WARNING", logger="transfercore.globus_dsi"):
        _feed(up, fake, payload, list(range(6)))
    assert "no restart markers for" in caplog.text
    assert not any(name == "timer_start" for name, _, _ in fake.calls)
    assert [args for name, _, args in fake.calls if name == "finished"] == [(0,)]
    assert (tmp_path / "c.bin").read_bytes() == payload


# -- the C data path's Python half (SinkUpload), against a fake of its C sink -----------------


class FakeSink:
    """What ``tc_sink_*`` keep for one upload: the written ranges (set by the test, as C's
    ``pwrite``s would), the queued durable ranges, how the reads were started."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.done: list[tuple[int, int]] = []
        self.queued: list[tuple[int, int]] = []
        self.started: tuple[int, int, float] | None = None
        self.closed = False


class FakeSinkLib(FakeLib):
    def tc_sink_new(self, op, fd, size, handle):  # type: ignore[no-untyped-def]
        return FakeSink(size)

    def tc_sink_claim(self, sink, start, end):  # type: ignore[no-untyped-def]
        return 0

    def tc_sink_start(self, sink, buffers, block, report):  # type: ignore[no-untyped-def]
        sink.started = (buffers, block, report)

    def tc_sink_written(self, sink, out, room):  # type: ignore[no-untyped-def]
        if len(sink.done) <= room:
            for i, (a, b) in enumerate(sink.done):
                out[2 * i], out[2 * i + 1] = a, b
        return len(sink.done)

    def tc_sink_queue(self, sink, start, length):  # type: ignore[no-untyped-def]
        sink.queued.append((start, length))
        return 0

    def tc_sink_report(self, sink, last):  # type: ignore[no-untyped-def]
        if not sink.closed:
            for start, length in sink.queued:
                self._rec("range", start, length)
            sink.queued = []
            sink.closed = bool(last)

    def tc_sink_stats(self, sink, received, callbacks, seconds, errnum, error, size):  # type: ignore[no-untyped-def]
        received[0] = sum(b - a for a, b in sink.done)
        callbacks[0] = len(sink.done)
        seconds[0] = 0.0
        errnum[0] = 0
        error[0] = b"\0"

    def tc_sink_kick(self, sink):  # type: ignore[no-untyped-def]
        return 0

    def tc_sink_release(self, sink):  # type: ignore[no-untyped-def]
        self._rec("release")


@pytest.fixture
def sink_fake(monkeypatch: pytest.MonkeyPatch) -> FakeSinkLib:
    return _fake_glue(monkeypatch, FakeSinkLib(), "typedef unsigned char globus_byte_t; typedef long long globus_off_t;")


def _sink_upload(tmp_path, size: int):  # type: ignore[no-untyped-def]
    from transfercore_globus_dsi.sink import SinkUpload

    session = _session(f"posix://{tmp_path}")
    path = f"{tmp_path}/c.bin"
    writer = session.driver.open_write(path, size, None)
    return SinkUpload(session, "op", path, writer, writer.lend_fd())


@pytest.mark.parametrize(("size", "block"), [(5000, 5000), (1, 1), (256 * 1024, 256 * 1024), (3 << 20, 256 * 1024)])
def test_c_reads_into_buffers_no_larger_than_the_announced_upload(sink_fake, tmp_path, size, block):
    """A small file's reads get buffers of its size, not of the server's block size (which C
    allocated and freed for every file of a tree)."""
    upload = _sink_upload(tmp_path, size)
    upload.begin(4, 256 * 1024, 1.0)
    assert upload.sink.started[:2] == (4, block)
    upload.writer.abort()
    glue.release(upload)


def test_a_small_c_upload_is_reported_whole_once_complete_made_it_durable(sink_fake, tmp_path, monkeypatch):
    """A fresh upload that had no marker: after complete() published it, its one last 111
    names the whole file, handed to the server once, before finished_transfer."""
    from transfercore_globus_dsi import upload as upload_mod

    monkeypatch.setattr(upload_mod, "SMALL_UPLOAD", 1 << 20)
    payload = os.urandom(5000)
    upload = _sink_upload(tmp_path, len(payload))
    upload.start_flusher(0.01)
    upload.begin(1, 256 * 1024, 0.01)
    assert not upload.ticking
    os.pwrite(upload.writer.lend_fd(), payload, 0)
    upload.sink.done = [(0, len(payload))]
    upload.on_done()
    names = [name for name, _, _ in sink_fake.calls]
    assert [a for name, _, a in sink_fake.calls if name == "range"] == [(0, len(payload))]
    assert names.index("will_block") < names.index("range") < names.index("finished") < names.index("release")
    assert [a for name, _, a in sink_fake.calls if name == "finished"] == [(0,)]
    assert (tmp_path / "c.bin").read_bytes() == payload
    glue.release(upload)


def test_a_c_upload_missing_bytes_is_not_published_and_reports_only_what_durable_returned(
    sink_fake, tmp_path, monkeypatch
):
    from transfercore_globus_dsi import upload as upload_mod

    monkeypatch.setattr(upload_mod, "SMALL_UPLOAD", 1 << 20)
    upload = _sink_upload(tmp_path, 5000)
    upload.start_flusher(0.01)
    upload.begin(1, 256 * 1024, 0.01)
    os.pwrite(upload.writer.lend_fd(), b"x" * 3000, 0)
    upload.sink.done = [(0, 3000)]
    upload.on_done()
    assert [a for name, _, a in sink_fake.calls if name == "range"] == [(0, 3000)]
    assert [a for name, _, a in sink_fake.calls if name == "finished"] != [(0,)]
    assert not (tmp_path / "c.bin").exists()
    glue.release(upload)


@pytest.mark.parametrize("pairs", [[(0, 30)], [(0, 10), (20, 30)], [(100 * i, 100 * i + 10) for i in range(40)]])
def test_the_written_ranges_c_reports(sink_fake, tmp_path, pairs):
    """One range (the usual case, taken without normalizing), several, and more than the first room holds."""
    upload = _sink_upload(tmp_path, 1 << 20)
    upload.sink.done = pairs
    assert upload.written() == RangeSet.of(*pairs)
    assert upload.written() == RangeSet.of(*pairs)
    upload.writer.abort()
    glue.release(upload)
