import os
import random
import threading

import pytest
from posix_support import payload, refuse_o_direct, resident_pages
from transfercore_posix import names, sidecar

from transfercore.errors import InvalidWrite, NoSpace, StorageError, WriterClosed
from transfercore.ranges import RangeSet


def _record(target):
    directory, name = os.path.split(target)
    return sidecar.load(directory, name)


def _assert_sidecar_agrees(writer, target, data, marker):
    """The record names exactly the marker, and the partial file holds those bytes."""
    record = _record(target)
    assert record is not None and record.ranges == marker
    st = os.stat(writer.partial_path)
    assert (st.st_dev, st.st_ino) == (record.dev, record.ino)
    assert writer.partial_path.endswith(names.partial_name(os.path.basename(target), record.token))
    with open(writer.partial_path, "rb") as handle:
        for r in marker:
            handle.seek(r.start)
            assert handle.read(r.length) == data[r.start : r.end]


def test_sidecar_and_data_agree_after_each_durable_call(driver, target):
    size = 256 * 1024
    data = payload(size)
    blocks = [(o, min(o + 8192, size)) for o in range(0, size, 8192)]
    random.Random(7).shuffle(blocks)
    writer = driver.open_write(target, size)
    previous = RangeSet()
    for i, (a, b) in enumerate(blocks):
        writer.write(a, data[a:b])
        if i % 5 == 4:
            marker = writer.durable()
            assert marker.contains(previous)  # monotonic
            assert marker.total() == (i + 1) * 8192 or b == size
            _assert_sidecar_agrees(writer, target, data, marker)
            previous = marker
    writer.complete()
    with open(target, "rb") as handle:
        assert handle.read() == data


def test_parallel_writers_produce_a_complete_file(driver, target):
    size = 4 * 1024 * 1024 + 17
    data = payload(size)
    block = 64 * 1024
    offsets = list(range(0, size, block))
    writer = driver.open_write(target, size)
    markers: list[RangeSet] = []

    def worker(mine):
        for o in mine:
            writer.write(o, memoryview(data)[o : o + block])

    threads = [threading.Thread(target=worker, args=(offsets[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        markers.append(writer.durable())
    for t in threads:
        t.join()
    final = writer.durable()
    assert final == RangeSet.span(0, size)
    # The threads may all finish before a first marker is taken (a quiet machine).
    chain = [*markers, final]
    for earlier, later in zip(chain, chain[1:], strict=False):
        assert later.contains(earlier)
    _assert_sidecar_agrees(writer, target, data, final)
    writer.complete()
    with open(target, "rb") as handle:
        assert handle.read() == data


def test_nothing_appears_under_the_final_name_before_complete(driver, target):
    writer = driver.open_write(target, 10)
    writer.write(0, b"01234")
    writer.durable()
    assert not os.path.exists(target)
    writer.write(5, b"56789")
    writer.complete()
    assert open(target, "rb").read() == b"0123456789"
    assert os.listdir(os.path.dirname(target)) == [os.path.basename(target)]


def test_complete_without_a_marker_leaves_no_record(driver, target):
    writer = driver.open_write(target, 3)
    writer.write(0, b"abc")
    writer.complete()
    assert sorted(os.listdir(os.path.dirname(target))) == ["obj.bin"]


def test_empty_object(driver, target):
    writer = driver.open_write(target, 0)
    assert writer.durable() == RangeSet()
    writer.complete()
    assert os.path.getsize(target) == 0


def test_complete_with_missing_bytes_is_refused_and_the_writer_stays_usable(driver, target):
    writer = driver.open_write(target, 10)
    writer.write(0, b"01234")
    with pytest.raises(InvalidWrite, match="5-10"):
        writer.complete()
    assert not os.path.exists(target)
    writer.write(5, b"56789")
    writer.complete()
    assert open(target, "rb").read() == b"0123456789"


@pytest.mark.parametrize(
    ("offset", "data", "match"),
    [(-1, b"x", "non-negative"), (8, b"xyz", "past the object's size"), (2, b"x", "overlaps"),
     (0, b"abcd", "overlaps"), ("1", b"x", "non-negative")],
)
def test_bad_writes_are_refused_and_lose_nothing(driver, target, offset, data, match):
    writer = driver.open_write(target, 10)
    writer.write(1, b"ab")
    with pytest.raises(InvalidWrite, match=match):
        writer.write(offset, data)
    assert writer.durable() == RangeSet.span(1, 3)
    writer.abort()


def test_writes_overlapping_the_resumed_marker_are_refused(driver, target):
    writer = driver.open_write(target, 10)
    writer.write(0, b"0123")
    marker = writer.durable()
    writer.abort()
    resumed = driver.open_write(target, 10, marker)
    assert resumed.resumed == marker
    with pytest.raises(InvalidWrite, match="overlaps"):
        resumed.write(3, b"3456")
    resumed.write(4, b"456789")
    resumed.complete()
    assert open(target, "rb").read() == b"0123456789"


@pytest.mark.parametrize("how", ["complete", "abort", "close"])
def test_use_after_close_is_refused(driver, target, how):
    writer = driver.open_write(target, 1)
    writer.write(0, b"x")
    getattr(writer, how)()
    with pytest.raises(WriterClosed):
        writer.write(0, b"x")
    with pytest.raises(WriterClosed):
        writer.durable()
    with pytest.raises(WriterClosed):
        writer.complete()
    writer.abort()  # idempotent


def test_abort_keeps_the_durable_state(driver, target):
    with driver.open_write(target, 10) as writer:
        writer.write(0, b"01234")
        marker = writer.durable()
        writer.write(5, b"56")  # accepted, never made durable
    assert driver.partial(target) == marker == RangeSet.span(0, 5)


def test_a_failed_write_loses_no_marked_data(driver, target, monkeypatch):
    data = payload(100)
    writer = driver.open_write(target, 100)
    writer.write(0, data[:50])
    marker = writer.durable()
    real = os.pwrite

    def full(fd, buf, offset):
        real(fd, bytes(buf)[:3], offset)  # a torn write lands partly, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(NoSpace) as info:
        writer.write(50, data[50:])
    assert "free space" in str(info.value)
    monkeypatch.undo()
    assert writer.durable() == marker
    writer.abort()
    _ = driver.open_write(target, 100, marker)  # still resumable
    with open(writer.partial_path, "rb") as handle:
        assert handle.read(50) == data[:50]


def test_a_failed_sync_reports_no_marker_and_keeps_the_old_one(driver, target, monkeypatch):
    writer = driver.open_write(target, 10)
    writer.write(0, b"01234")
    marker = writer.durable()
    writer.write(5, b"56789")

    def eio(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", eio)
    with pytest.raises(StorageError, match="last marker still holds"):
        writer.durable()
    monkeypatch.undo()
    assert driver.partial(target) == marker
    writer.abort()


def test_complete_waits_for_writes_in_flight(driver, target, monkeypatch):
    started, release = threading.Event(), threading.Event()
    real = os.pwrite

    def slow(fd, buf, offset):
        started.set()
        release.wait(5)
        return real(fd, buf, offset)

    writer = driver.open_write(target, 4)
    monkeypatch.setattr(os, "pwrite", slow)
    t = threading.Thread(target=writer.write, args=(0, b"abcd"))
    t.start()
    assert started.wait(5)
    done = []
    c = threading.Thread(target=lambda: done.append(writer.complete()))
    c.start()
    c.join(0.2)
    assert not done  # still waiting for the write
    release.set()
    t.join(5)
    c.join(5)
    monkeypatch.undo()
    assert done == [None]
    assert open(target, "rb").read() == b"abcd"


def test_read_durable_returns_the_stored_bytes_of_the_marker(driver, target):
    data = payload(1000)
    writer = driver.open_write(target, 1000)
    writer.write(0, data[:600])
    writer.write(800, data[800:])
    marker = writer.durable()
    buffer = bytearray(600)
    writer.read_durable(0, buffer)
    assert buffer == data[:600]
    tail = memoryview(bytearray(200))
    writer.read_durable(800, tail)
    assert tail == data[800:]
    with open(writer.partial_path, "r+b") as handle:  # the storage changes a stored byte
        handle.seek(5)
        handle.write(b"!")
    writer.read_durable(0, buffer)
    assert buffer[5:6] == b"!"  # what is stored, not what was sent
    assert marker == RangeSet.of((0, 600), (800, 1000))
    writer.abort()


def test_read_durable_refuses_bytes_outside_the_marker(driver, target):
    data = payload(1000)
    writer = driver.open_write(target, 1000)
    writer.write(0, data[:500])
    with pytest.raises(InvalidWrite, match="durable marker"):
        writer.read_durable(0, bytearray(10))  # written, not yet durable
    writer.durable()
    writer.write(500, data[500:])
    with pytest.raises(InvalidWrite, match="durable marker"):
        writer.read_durable(400, bytearray(200))  # straddles the marker's end
    with pytest.raises(Exception, match="outside"):
        writer.read_durable(900, bytearray(200))
    writer.durable()
    writer.complete()
    with pytest.raises(WriterClosed):
        writer.read_durable(0, bytearray(10))


def test_read_durable_covers_the_resumed_marker(driver, target):
    data = payload(1000)
    first = driver.open_write(target, 1000)
    first.write(0, data[:700])
    kept = first.durable()
    first.abort()
    writer = driver.open_write(target, 1000, resume=kept)
    buffer = bytearray(700)
    writer.read_durable(0, buffer)
    assert buffer == data[:700]
    writer.abort()


@pytest.mark.parametrize("query,overlap", [("", False), ("?parallel_pwrite=true", True)])
def test_pwrites_take_turns_unless_parallel_pwrite_is_set(tmp_path, monkeypatch, query, overlap):
    import time

    from transfercore_posix import writer as writer_mod

    from transfercore.registry import open_location

    active = {"now": 0, "max": 0}
    lock = threading.Lock()
    real = writer_mod.pwrite_all

    def slow_pwrite(fd, view, offset):
        with lock:
            active["now"] += 1
            active["max"] = max(active["max"], active["now"])
        time.sleep(0.01)
        real(fd, view, offset)
        with lock:
            active["now"] -= 1

    monkeypatch.setattr(writer_mod, "pwrite_all", slow_pwrite)
    endpoint = open_location(f"posix://{tmp_path}/o.bin{query}")
    data = payload(8 * 1000)
    writer = endpoint.driver.open_write(endpoint.path, len(data))
    threads = [
        threading.Thread(target=writer.write, args=(i * 1000, data[i * 1000 : (i + 1) * 1000])) for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.durable()
    writer.complete()
    assert (tmp_path / "o.bin").read_bytes() == data
    assert (active["max"] > 1) is overlap


# -- O_DIRECT (driver option direct) -------------------------------------------------


def _spy(monkeypatch, module, name):
    """Record the descriptor and range of every call to ``module.name``, then call it."""
    calls = []
    real = getattr(module, name)

    def spy(fd, view, offset, *rest):
        calls.append((fd, offset, memoryview(view).nbytes))
        return real(fd, view, offset, *rest)

    monkeypatch.setattr(module, name, spy)
    return calls


def _filled(data: bytes) -> memoryview:
    from transfercore.engine.buffers import aligned_buffer

    view = aligned_buffer(len(data))
    view[:] = data
    return view


def test_aligned_writes_go_direct_and_the_rest_stay_buffered(tmp_path, monkeypatch):
    from transfercore_posix import writer as writer_mod
    from transfercore_posix.direct import MIN_DIRECT as M
    from transfercore_posix.driver import PosixDriver

    target = str(tmp_path / "o.bin")
    size = 2 * M + 8192 + 100
    writer = PosixDriver(options={"direct": "on"}).open_write(target, size)
    direct_fd = writer._direct.fd
    assert direct_fd != writer._fd
    if writer._direct.alignment != 4096:
        pytest.skip(f"this file system asks for {writer._direct.alignment}-byte alignment; the layout assumes 4096")
    data = os.urandom(size)
    calls = _spy(monkeypatch, writer_mod, "pwrite_all")
    writer.write(0, _filled(data[:M]))  # aligned: direct
    writer.write(M, data[M : M + 4096])  # bytes: address unknown, buffered
    writer.write(M + 4096, _filled(data[M + 4096 : M + 8192]))  # aligned but small: buffered
    writer.write(M + 8192, _filled(data[M + 8192 :]))  # M direct, then the 100-byte tail buffered
    assert calls == [
        (direct_fd, 0, M),
        (writer._fd, M, 4096),
        (writer._fd, M + 4096, 4096),
        (direct_fd, M + 8192, M),
        (writer._fd, 2 * M + 8192, 100),
    ]
    marker = writer.durable()
    reads = _spy(monkeypatch, writer_mod, "preadv_exact")
    back = _filled(bytes(size))
    writer.read_durable(0, back)
    assert bytes(back) == data
    assert reads == [(direct_fd, 0, 2 * M + 8192), (writer._fd, 2 * M + 8192, 100)]
    writer.complete()
    assert open(target, "rb").read() == data and marker == RangeSet.span(0, size)


def _no_buffered_reads(writer, real):
    def direct_only(fd, view, offset, what):
        assert fd == writer._direct.fd
        return real(fd, view, offset, what)

    return direct_only


def test_read_durable_direct_sees_what_is_stored(tmp_path, monkeypatch):
    from transfercore_posix import writer as writer_mod
    from transfercore_posix.direct import MIN_DIRECT as M
    from transfercore_posix.driver import PosixDriver

    target = str(tmp_path / "o.bin")
    data = os.urandom(M)
    writer = PosixDriver(options={"direct": "on"}).open_write(target, M)
    writer.write(0, _filled(data))
    writer.durable()
    with open(writer.partial_path, "r+b") as handle:  # the storage changes a stored byte
        handle.seek(5)
        handle.write(b"!")
    back = _filled(bytes(M))
    monkeypatch.setattr(writer_mod, "preadv_exact", _no_buffered_reads(writer, writer_mod.preadv_exact))
    writer.read_durable(0, back)
    assert bytes(back[:5]) == data[:5] and bytes(back[5:6]) == b"!"
    writer.abort()


def test_direct_off_opens_no_second_descriptor(tmp_path):
    from transfercore.registry import open_location

    endpoint = open_location(f"posix://{tmp_path}/o.bin?direct=off")
    writer = endpoint.driver.open_write(endpoint.path, 4096)
    assert writer._direct is None
    writer.write(0, _filled(payload(4096)))
    writer.complete()
    assert (tmp_path / "o.bin").read_bytes() == payload(4096)


def test_a_bad_direct_value_is_refused(tmp_path):
    from transfercore.errors import OptionError
    from transfercore.registry import open_location

    with pytest.raises(OptionError, match="auto, on, off"):
        open_location(f"posix://{tmp_path}/o.bin?direct=maybe")


def test_a_file_system_refusing_o_direct(tmp_path, monkeypatch):
    from transfercore_posix.driver import PosixDriver

    refuse_o_direct(monkeypatch)
    target = str(tmp_path / "o.bin")
    with pytest.raises(StorageError, match="refuses O_DIRECT"):
        PosixDriver(options={"direct": "on"}).open_write(target, 4096)
    assert os.listdir(tmp_path) == []  # no partial file left behind
    writer = PosixDriver(options={"direct": "auto"}).open_write(target, 4096)
    assert writer._direct is None  # silently buffered
    writer.write(0, _filled(payload(4096)))
    writer.complete()
    assert open(target, "rb").read() == payload(4096)


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_a_refused_direct_write(tmp_path, monkeypatch, mode):
    import errno

    from transfercore_posix import writer as writer_mod
    from transfercore_posix.direct import MIN_DIRECT as M
    from transfercore_posix.driver import PosixDriver

    target = str(tmp_path / "o.bin")
    writer = PosixDriver(options={"direct": mode}).open_write(target, M)
    real = writer_mod.pwrite_all

    def refuse_direct(fd, view, offset):
        if fd == writer._direct.fd:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, view, offset)

    monkeypatch.setattr(writer_mod, "pwrite_all", refuse_direct)
    data = os.urandom(M)
    if mode == "on":
        with pytest.raises(StorageError, match="direct=auto"):
            writer.write(0, _filled(data))
        writer.write(0, data)  # nothing was recorded as written: the range is still free
    else:
        writer.write(0, _filled(data))
        assert writer._direct.usable is False
    writer.complete()
    assert open(target, "rb").read() == data


def test_resume_writes_direct_too(tmp_path, monkeypatch):
    from transfercore_posix import writer as writer_mod
    from transfercore_posix.direct import MIN_DIRECT as M
    from transfercore_posix.driver import PosixDriver

    driver = PosixDriver(options={"direct": "on"})
    target = str(tmp_path / "o.bin")
    data = os.urandom(2 * M + 7)
    first = driver.open_write(target, len(data))
    first.write(0, _filled(data[:M]))
    kept = first.durable()
    first.abort()
    writer = driver.open_write(target, len(data), resume=kept)
    assert writer._direct is not None
    calls = _spy(monkeypatch, writer_mod, "pwrite_all")
    writer.write(M, _filled(data[M:]))
    assert calls == [(writer._direct.fd, M, M), (writer._fd, 2 * M, 7)]
    writer.complete()
    assert open(target, "rb").read() == data


# -- the page cache after read-back (driver option keep_cache) ---------------------------


@pytest.mark.parametrize("keep", [False, True])
def test_read_back_pages_leave_the_cache_unless_kept(tmp_path, keep):
    import mmap

    from transfercore_posix.driver import PosixDriver

    PAGE = mmap.PAGESIZE
    size = 4 << 20
    data = os.urandom(size)
    target = str(tmp_path / "o.bin")
    writer = PosixDriver(options={"keep_cache": keep}).open_write(target, size)
    writer.write(0, _filled(data))
    writer.durable()
    assert resident_pages(writer.partial_path) == size // PAGE  # written buffered, still cached
    back = _filled(bytes(size // 2))
    writer.read_durable(0, back)
    assert bytes(back) == data[: size // 2]
    resident = resident_pages(writer.partial_path)
    # Only the bytes read back are dropped; the rest stays until it is read back too.
    assert resident == (size // PAGE if keep else size // 2 // PAGE)
    writer.read_durable(size // 2, back)
    assert bytes(back) == data[size // 2 :]
    assert resident_pages(writer.partial_path) == (size // PAGE if keep else 0)
    writer.complete()
    assert open(target, "rb").read() == data


def test_the_default_writes_through_the_page_cache(tmp_path):
    from transfercore_posix.driver import PosixDriver

    driver = PosixDriver()
    assert driver.settings["direct"] == "off" and driver.settings["keep_cache"] is False
    assert driver.describe()["page cache"] == "dropped once read back or one marker later"
    writer = driver.open_write(str(tmp_path / "o.bin"), 4096)
    assert writer._direct is None
    writer.abort()


@pytest.mark.parametrize("keep", [False, True])
def test_durable_pages_nobody_reads_back_leave_the_cache_one_marker_later(tmp_path, keep):
    import mmap

    from transfercore_posix.driver import PosixDriver

    half = (2 << 20) // mmap.PAGESIZE
    size = 2 * half * mmap.PAGESIZE
    data = os.urandom(size)
    target = str(tmp_path / "o.bin")
    writer = PosixDriver(options={"keep_cache": keep}).open_write(target, size)
    writer.write(0, _filled(data[: size // 2]))
    writer.durable()
    assert resident_pages(writer.partial_path) == half  # just made durable: still cached
    writer.write(size // 2, _filled(data[size // 2 :]))
    writer.durable()
    # The first half has been durable for a whole marker: dropped; the second waits.
    assert resident_pages(writer.partial_path) == (2 * half if keep else half)
    writer.durable()
    assert resident_pages(writer.partial_path) == (2 * half if keep else 0)
    writer.complete()
    assert open(target, "rb").read() == data


def test_a_read_back_under_way_keeps_unread_durable_pages_cached(tmp_path):
    import mmap

    from transfercore_posix.driver import PosixDriver

    quarter = (1 << 20) // mmap.PAGESIZE
    size = 4 * quarter * mmap.PAGESIZE
    data = os.urandom(size)
    writer = PosixDriver().open_write(str(tmp_path / "o.bin"), size)
    q = size // 4
    back = _filled(bytes(q))
    writer.write(0, _filled(data[:q]))
    writer.durable()
    writer.read_durable(0, back)  # a verifier reads the first quarter, and lags
    writer.write(q, _filled(data[q : 2 * q]))
    writer.durable()
    writer.write(2 * q, _filled(data[2 * q : 3 * q]))
    writer.durable()
    # The second quarter, durable for a marker but not yet read back, stays
    # cached for the read-back; only what was read back is gone.
    assert resident_pages(writer.partial_path) == 2 * quarter
    writer.read_durable(q, back)
    assert bytes(back) == data[q : 2 * q]
    assert resident_pages(writer.partial_path) == quarter
    writer.abort()


def test_a_small_object_opens_no_direct_descriptor_unless_direct_is_on(tmp_path, monkeypatch):
    from transfercore_posix import partials
    from transfercore_posix.direct import MIN_DIRECT as M
    from transfercore_posix.driver import PosixDriver

    opened = []
    real = partials.open_direct

    def spy(path, mode):
        opened.append(os.path.basename(path).split(".")[1])
        return real(path, mode)

    monkeypatch.setattr(partials, "open_direct", spy)
    small = PosixDriver(options={"direct": "auto"}).open_write(str(tmp_path / "small"), M - 1)
    assert small._direct is None  # no write of it could go direct: not even opened
    small.abort()
    PosixDriver(options={"direct": "auto"}).open_write(str(tmp_path / "large"), M).abort()
    PosixDriver(options={"direct": "on"}).open_write(str(tmp_path / "tiny-on"), 10).abort()
    assert opened == ["large", "tiny-on"]
