import threading
import time

import pytest

from transfercore.checksums import Hasher, digest_bytes
from transfercore.contract import Reader, Writer
from transfercore.engine.pump import Pump
from transfercore.engine.scheduler import plan_blocks
from transfercore.errors import InvalidWrite, StorageError
from transfercore.ranges import RangeSet

DATA = bytes((i * 7) % 251 for i in range(100_000))


class SlowReader(Reader):
    """Reads with a delay that makes later blocks finish first."""

    def __init__(self, data, ordered=False):
        self.data = data
        self.ordered = ordered
        self.next = 0
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    @property
    def size(self):
        return len(self.data)

    def read(self, offset, length):
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            if self.ordered:
                assert offset == self.next, f"read at {offset}, expected {self.next}"
                self.next = offset + length
        time.sleep(0.002 if offset % 3 == 0 else 0.0005)
        with self.lock:
            self.active -= 1
        return self.data[offset : offset + length]


class RecordingWriter(Writer):
    def __init__(self, size, ordered=False, fail_at=None):
        self._size = size
        self.buf = bytearray(size)
        self.order = []
        self.ordered = ordered
        self.fail_at = fail_at
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    size = property(lambda self: self._size)
    resumed = property(lambda self: RangeSet())

    def write(self, offset, data):
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            if self.ordered and self.order and offset != self.order[-1][1]:
                raise InvalidWrite(f"out of order at {offset}")
        try:
            if self.fail_at is not None and offset >= self.fail_at:
                raise StorageError("injected")
            time.sleep(0.001)
            self.buf[offset : offset + len(data)] = data
            with self.lock:
                self.order.append((offset, offset + len(data)))
        finally:
            with self.lock:
                self.active -= 1

    def durable(self):
        return RangeSet()

    def complete(self):
        pass

    def abort(self):
        pass


def run(reader, writer, blocks, **kw):
    wake = threading.Event()
    args = dict(streams=4, max_writers=4, ordered_reads=False, ordered_writes=False, hasher=None, wake=wake)
    args.update(kw)
    pump = Pump(reader, writer, blocks, **args)
    pump.start()
    pump.join()
    return pump


def test_moves_every_block_and_hashes_in_order_although_writes_finish_out_of_order():
    writer = RecordingWriter(len(DATA))
    hasher = Hasher("md5")
    pump = run(SlowReader(DATA), writer, plan_blocks(len(DATA), RangeSet(), 3000, include_have=True), hasher=hasher)
    assert pump.error is None
    assert bytes(writer.buf) == DATA
    assert hasher.hexdigest() == digest_bytes("md5", DATA)
    assert pump.bytes_sent == len(DATA)
    assert pump.written() == RangeSet.span(0, len(DATA))


def test_ordered_destination_gets_ascending_writes():
    writer = RecordingWriter(len(DATA), ordered=True)
    pump = run(SlowReader(DATA), writer, plan_blocks(len(DATA), RangeSet(), 1000, include_have=False),
               ordered_writes=True, max_writers=1)
    assert pump.error is None
    assert [a for a, _ in writer.order] == sorted(a for a, _ in writer.order)
    assert bytes(writer.buf) == DATA
    assert writer.max_active == 1


def test_ordered_source_is_read_in_order():
    reader = SlowReader(DATA, ordered=True)
    pump = run(reader, RecordingWriter(len(DATA)), plan_blocks(len(DATA), RangeSet(), 1000, include_have=True),
               ordered_reads=True)
    assert pump.error is None and reader.max_active == 1


def test_max_writers_is_respected():
    writer = RecordingWriter(len(DATA))
    run(SlowReader(DATA), writer, plan_blocks(len(DATA), RangeSet(), 1000, include_have=False), max_writers=2, streams=6)
    assert writer.max_active <= 2


def test_resumed_blocks_are_hashed_but_not_written():
    have = RangeSet.span(0, 40_000)
    writer = RecordingWriter(len(DATA))
    hasher = Hasher("crc32c")
    pump = run(SlowReader(DATA), writer, plan_blocks(len(DATA), have, 3000, include_have=True), hasher=hasher)
    assert pump.bytes_sent == len(DATA) - 40_000
    assert all(start >= 40_000 for start, _ in writer.order)
    assert hasher.hexdigest() == digest_bytes("crc32c", DATA)


@pytest.mark.parametrize("ordered", [False, True])
def test_a_write_error_stops_all_streams_and_is_reported(ordered):
    writer = RecordingWriter(len(DATA), ordered=ordered, fail_at=50_000)
    pump = run(SlowReader(DATA), writer, plan_blocks(len(DATA), RangeSet(), 1000, include_have=True),
               hasher=Hasher("md5"), ordered_writes=ordered, max_writers=1 if ordered else 4)
    assert isinstance(pump.error, StorageError)
    assert pump.finished
    # Nothing past the failure point was accepted, and in order mode no hole was written around it.
    assert all(start < 50_000 for start, _ in writer.order)
    if ordered:
        assert pump.written() == RangeSet.span(0, 50_000)


def test_short_source_read_is_an_error():
    class Short(SlowReader):
        def read(self, offset, length):
            return super().read(offset, length)[:-1]

    pump = run(Short(DATA), RecordingWriter(len(DATA)), plan_blocks(len(DATA), RangeSet(), 1000, include_have=True))
    assert pump.error is not None and "short read" in str(pump.error)


def test_stop_ends_streams_early():
    writer = RecordingWriter(len(DATA))
    wake = threading.Event()
    pump = Pump(SlowReader(DATA), writer, plan_blocks(len(DATA), RangeSet(), 100, include_have=True),
                streams=2, max_writers=2, ordered_reads=False, ordered_writes=False, hasher=Hasher("md5"), wake=wake)
    pump.wake_at = 100  # woken once the first block is written: the streams are under way
    pump.start()
    assert wake.wait(10), "no block was written within 10 s"
    pump.stop()
    pump.join()
    assert pump.finished and pump.error is None
    assert 0 < pump.bytes_sent < len(DATA)


def test_wake_at_wakes_the_control_thread():
    wake = threading.Event()
    pump = Pump(SlowReader(DATA), RecordingWriter(len(DATA)), plan_blocks(len(DATA), RangeSet(), 1000, include_have=False),
                streams=1, max_writers=1, ordered_reads=False, ordered_writes=False, hasher=None, wake=wake)
    pump.wake_at = 5000
    pump.start()
    assert wake.wait(5)
    pump.join()


class BufferReader(SlowReader):
    """A reader with the optional ``readinto``; ``read`` must then not be used."""

    def __init__(self, data, short_at=None):
        super().__init__(data)
        self.buffers = set()
        self.short_at = short_at

    def read(self, offset, length):
        raise AssertionError("read() used although readinto() is offered")

    def readinto(self, offset, buffer):
        self.buffers.add(id(buffer.obj))
        if self.short_at is not None and offset <= self.short_at < offset + len(buffer):
            raise StorageError("file ended early")
        time.sleep(0.002 if offset % 3 == 0 else 0.0005)
        buffer[:] = self.data[offset : offset + len(buffer)]


def test_a_reader_with_readinto_fills_one_reused_buffer_per_stream():
    reader = BufferReader(DATA)
    writer = RecordingWriter(len(DATA))
    hasher = Hasher("sha256")
    blocks = plan_blocks(len(DATA), RangeSet(), 3000, include_have=True)
    pump = run(reader, writer, blocks, hasher=hasher, streams=3)
    assert pump.error is None
    assert bytes(writer.buf) == DATA
    assert hasher.hexdigest() == digest_bytes("sha256", DATA)
    assert 1 <= len(reader.buffers) <= 3 < len(blocks)


def test_a_failed_readinto_stops_the_streams():
    reader = BufferReader(DATA, short_at=50_000)
    pump = run(reader, RecordingWriter(len(DATA)), plan_blocks(len(DATA), RangeSet(), 1000, include_have=True))
    assert isinstance(pump.error, StorageError)
    assert pump.bytes_sent < len(DATA)
