"""Property: no schedule of writes, durability calls, faults and crashes loses a marked byte.

Two levels, both over the mock driver, whose crash drops (or, with
``corrupt=true``, scrambles) every byte not made durable:

1. the Writer contract alone: random pieces written in random order, random
   ``durable()`` calls, injected write and durability faults, random crashes,
   each followed by a resume with the last marker; finally the complement is
   written and the object completed;
2. the engine: ``copy`` runs with small blocks and frequent markers, each run
   with injected faults and possibly a crash at a chosen marker, a crash
   between runs, and a resume through the engine's journal; a last clean run
   finishes.

After every crash, every byte under the last marker ever returned must still
be in the store; the finished object must equal the source.
"""

from __future__ import annotations

import itertools
import random
import tempfile
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from transfercore_mock import reset_stores  # noqa: E402

from transfercore.engine import Marker, MarkerPolicy, TransferOptions, copy
from transfercore.errors import StorageError, TransferCoreError
from transfercore.journal import Journal
from transfercore.ranges import ByteRange, RangeSet
from transfercore.registry import open_location

_names = itertools.count()

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(autouse=True)
def _fresh_stores():
    reset_stores()
    yield
    reset_stores()


def unique(prefix: str) -> str:
    return f"{prefix}{next(_names)}"


def check_held(driver, path: str, data: bytes, promised: RangeSet) -> None:
    """The store still backs every byte of ``promised`` with the source's bytes."""
    recorded = driver.partial(path)
    assert recorded.contains(promised), f"after a crash the store records {recorded}, lost {promised - recorded}"
    for r in promised:
        got = driver.partial_bytes(path, r.start, r.end - r.start)
        assert got == data[r.start : r.end], f"bytes {r.start}-{r.end} under a returned marker were lost"


def read_object(driver, path: str) -> bytes:
    with driver.open_read(path) as reader:
        return reader.read(0, reader.size)


# -- level 1: the Writer contract ------------------------------------------------------


@st.composite
def writer_schedules(draw):
    size = draw(st.integers(1, 4096))
    cuts = draw(st.lists(st.integers(1, max(1, size - 1)), max_size=10, unique=True)) if size > 1 else []
    bounds = [0, *sorted(c for c in cuts if 0 < c < size), size]
    pieces = [ByteRange(a, b) for a, b in itertools.pairwise(bounds)]
    ops = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("write"), st.integers(0, 1000)),
                st.tuples(st.just("durable"), st.just(0)),
                st.tuples(st.just("crash"), st.just(0)),
            ),
            max_size=30,
        )
    )
    return {
        "size": size,
        "pieces": pieces,
        "ops": ops,
        "model": draw(st.sampled_from(["ranges", "prefix"])),
        "fail_after": draw(st.none() | st.integers(0, size)),
        "fail_durable": draw(st.none() | st.integers(1, 6)),
        "corrupt": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def _write_piece(writer, piece: ByteRange, data: bytes) -> bool:
    try:
        writer.write(piece.start, data[piece.start : piece.end])
    except StorageError as exc:
        assert "injected fault" in str(exc)
        return False
    return True


@SETTINGS
@given(writer_schedules())
def test_writer_schedules_never_lose_a_marked_byte(s):
    crashes = run_writer_schedule(s)
    event(f"crashes: {min(crashes, 3)}{'+' if crashes > 3 else ''}")


@pytest.mark.parametrize("lie", ["early-marker", "wide-marker", "forget-record"])
def test_the_property_catches_each_lying_mode(lie):
    # One plain schedule (write everything, take a marker, cut the power) must
    # already expose every lie of the mock: otherwise the property proves nothing.
    size = 3000
    schedule = {
        "size": size,
        "pieces": [ByteRange(0, 1000), ByteRange(1000, 2000), ByteRange(2000, size)],
        "ops": [("write", 0), ("write", 0), ("durable", 0), ("crash", 0)],
        "model": "ranges",
        "fail_after": None,
        "fail_durable": None,
        "corrupt": False,
        "seed": 1,
    }
    with pytest.raises(AssertionError):
        run_writer_schedule(schedule, lie=lie)


def run_writer_schedule(s, lie: str | None = None) -> int:
    data = random.Random(s["seed"]).randbytes(s["size"])
    query = [f"model={s['model']}", f"corrupt={'true' if s['corrupt'] else 'false'}"]
    if lie is not None:
        query.append(f"lie={lie}")
    if s["fail_after"] is not None:
        query.append(f"fail_after={s['fail_after']}")
    if s["fail_durable"] is not None:
        query.append(f"fail_durable={s['fail_durable']}")
    endpoint = open_location(f"mock://{unique('w')}/obj?{'&'.join(query)}")
    driver, path, size, pieces = endpoint.driver, endpoint.path, s["size"], s["pieces"]
    prefix = s["model"] == "prefix"

    writer = driver.open_write(path, size)
    have = RangeSet()  # written by this writer, or resumed
    marker = RangeSet()  # the last marker any writer returned
    crashes = 0

    def missing() -> list[ByteRange]:
        out = [p for p in pieces if not have.contains(RangeSet.of((p.start, p.end)))]
        return out[:1] if prefix else out

    for op, arg in s["ops"]:
        if op == "write":
            todo = missing()
            if todo:
                piece = todo[arg % len(todo)]
                if _write_piece(writer, piece, data):
                    have = have | piece
        elif op == "durable":
            try:
                got = writer.durable()
            except StorageError as exc:
                assert "injected fault" in str(exc)
                continue
            assert got.contains(marker), f"marker {got} dropped {marker - got}: not monotonic"
            assert have.contains(got), f"marker {got} covers bytes never written: {got - have}"
            assert not prefix or got == got.prefix(), f"prefix store returned a non-prefix marker {got}"
            marker = got
            check_held(driver, path, data, marker)
        else:
            driver.simulate_crash()
            crashes += 1
            check_held(driver, path, data, marker)
            writer = driver.open_write(path, size, resume=marker or None)
            assert writer.resumed == marker
            have = marker

    # Finish: write the complement of what is held; a write fault fires once, so retry once.
    for piece in [p for p in pieces if not have.contains(RangeSet.of((p.start, p.end)))]:
        if not _write_piece(writer, piece, data):
            assert _write_piece(writer, piece, data), "an injected write fault fired twice"
        have = have | piece
    assert have == RangeSet.span(0, size)
    writer.complete()
    assert read_object(driver, path) == data
    assert driver.partial(path) == RangeSet()
    return crashes


# -- level 2: the engine ---------------------------------------------------------------------


@attrs.frozen
class RunPlan:
    fail_after: int | None
    fail_durable: int | None
    #: Cut the power when the engine reports this many markers (None: never).
    crash_at_marker: int | None
    #: Cut the power after the run ended (failed or not).
    crash_after: bool


@st.composite
def engine_schedules(draw):
    # Mostly objects of many blocks, so that faults and crashes land between markers.
    size = draw(st.integers(1, 128 * 1024) | st.integers(16 * 1024, 128 * 1024))
    block = draw(st.sampled_from([512, 1024, 2048, 4096]))
    runs = draw(
        st.lists(
            st.builds(
                RunPlan,
                fail_after=st.integers(0, size) | st.none(),
                fail_durable=st.none() | st.integers(1, 8),
                crash_at_marker=st.integers(1, 4) | st.none(),
                crash_after=st.booleans(),
            ),
            min_size=1,
            max_size=4,
        )
    )
    return {
        "size": size,
        "block": block,
        "streams": draw(st.integers(1, 4)),
        "marker_blocks": draw(st.integers(1, 4)),
        "model": draw(st.sampled_from(["ranges", "prefix"])),
        "corrupt": draw(st.booleans()),
        "runs": runs,
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


class Watch:
    """A listener: checks every marker against the store, and cuts the power on cue."""

    def __init__(self, driver, path: str, data: bytes, crash_at: int | None) -> None:
        self.driver = driver
        self.path = path
        self.data = data
        self.crash_at = crash_at
        self.markers = 0
        self.last = RangeSet()

    def __call__(self, event) -> None:
        if not isinstance(event, Marker):
            return
        assert event.ranges.contains(self.last), "the engine reported a marker that dropped earlier ranges"
        self.last = event.ranges
        self.markers += 1
        check_held(self.driver, self.path, self.data, event.ranges)
        if self.crash_at is not None and self.markers == self.crash_at:
            self.driver.simulate_crash()


@SETTINGS
@given(engine_schedules())
def test_engine_schedules_never_lose_a_marked_byte(s):
    size = s["size"]
    data = random.Random(s["seed"]).randbytes(size)
    src_store, dst_store = unique("src"), unique("dst")
    source = open_location(f"mock://{src_store}/in")
    writer = source.driver.open_write("/in", size)
    writer.write(0, data)
    writer.complete()
    base = f"mock://{dst_store}/out?model={s['model']}&block={s['block']}&corrupt={'true' if s['corrupt'] else 'false'}"
    probe = open_location(base)
    options = TransferOptions(
        streams=s["streams"],
        block_size=s["block"],
        marker_policy=MarkerPolicy(interval=None, bytes=s["marker_blocks"] * s["block"]),
        checksum="crc32c",
        progress_interval=60.0,
    )
    promised = RangeSet()
    runs = 0
    resumed_any = False
    with tempfile.TemporaryDirectory() as tmp, Journal(Path(tmp) / "journal.db") as journal:
        for plan in [*s["runs"], RunPlan(None, None, None, False)]:
            query = "".join(
                f"&{name}={value}"
                for name, value in (("fail_after", plan.fail_after), ("fail_durable", plan.fail_durable))
                if value is not None
            )
            watch = Watch(probe.driver, "/out", data, plan.crash_at_marker)
            runs += 1
            resumed_any = resumed_any or bool(promised)
            before = promised
            try:
                result = copy(f"mock://{src_store}/in", base + query, options, journal=journal, listeners=[watch])
            except TransferCoreError:
                result = None
            if watch.last:
                promised = watch.last
            if result is not None:
                # A resumed run keeps at least what was reported before it.
                assert result.bytes_resumed >= before.total()
                break
            if plan.crash_after:
                probe.driver.simulate_crash()
            # A crash may follow any failure: the journal's marker must still be backed.
            check_held(probe.driver, "/out", data, promised)
            entry = journal.find(f"mock://{src_store}/in", f"mock://{dst_store}/out")
            assert entry is not None and entry.marker.contains(promised), (
                f"the journal holds {entry and entry.marker}, not the reported marker {promised}"
            )
        assert result is not None, "the clean last run failed"
        # Markers reported before the last run must be resumed (the last run's own markers
        # say nothing about whether it had to start from zero).
        if before and result.size:
            assert result.restart_reason is None, f"a resume started from zero: {result.restart_reason}"
        assert result.bytes_resumed + result.bytes_sent == size
        assert read_object(probe.driver, "/out") == data
    event(f"runs: {runs}, markers before the last run: {'yes' if resumed_any else 'no'}")
