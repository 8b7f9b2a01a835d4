"""The write path and the restart tests of the HPSS DSI, against the emulator."""

from __future__ import annotations

import gc
import hashlib
import logging
import time
from pathlib import Path

import pytest
from hpss_support import KiB, payload
from transfercore_hpss import pio, record
from transfercore_hpss import writer as writer_mod
from transfercore_hpss.api import HpssHung
from transfercore_hpss.driver import HpssDriver

from transfercore.blockpool import BlockPool
from transfercore.errors import InvalidWrite, NoSpace, QuotaExceeded, RestartRejected, StorageError
from transfercore.ranges import ByteRange, RangeSet

SIZE = 1024 * KiB + 12345  # four full segments of 256 KiB and a short fifth


def send(
    driver: HpssDriver, data: bytes, start: int = 0, resume: RangeSet | None = None, chunk: int = 100_000
):
    """Write data[start:] like the engine would; returns (writer, error)."""
    w = driver.open_write("/f", len(data), resume)
    try:
        for off in range(start, len(data), chunk):
            w.write(off, data[off : off + chunk])
        w.complete()
        return w, None
    except StorageError as exc:
        w.abort()
        return w, exc


def test_markers_add_up_to_the_file_size(driver: HpssDriver, emu_root: Path) -> None:
    data = payload(SIZE)
    w, err = send(driver, data)
    assert err is None
    # One marker per segment return; consecutive markers tile the whole file.
    assert w.markers == [256 * KiB, 512 * KiB, 768 * KiB, 1024 * KiB, SIZE]
    edges = [0, *w.markers]
    assert sum(b - a for a, b in zip(edges, edges[1:], strict=False)) == SIZE
    assert w.durable() == RangeSet([ByteRange(0, SIZE)])
    assert (emu_root / "f").read_bytes() == data


@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.75])
def test_failure_resumes_at_last_marker_with_right_checksum(
    driver: HpssDriver, emu_root: Path, monkeypatch: pytest.MonkeyPatch, fraction: float
) -> None:
    data = payload(SIZE, seed=3)
    fail_at = int(SIZE * fraction) + 1000
    monkeypatch.setenv("HPSS_EMU_FAIL_AFTER", str(fail_at))
    w, err = send(driver, data)
    assert err is not None
    marker = w.durable()
    # On 10.x BytesMoved is set on error: the marker is exactly what moved.
    assert marker == RangeSet([ByteRange(0, fail_at)])
    # The refused write stays under its partial name; nothing shows under the final one.
    assert (emu_root / ".f.tcpart").read_bytes()[:fail_at] == data[:fail_at]
    assert not (emu_root / "f").exists()
    monkeypatch.delenv("HPSS_EMU_FAIL_AFTER")
    w2, err2 = send(driver, data, start=fail_at, resume=marker)
    assert err2 is None
    assert w2.resumed == marker
    assert hashlib.md5((emu_root / "f").read_bytes()).hexdigest() == hashlib.md5(data).hexdigest()
    assert driver.checksum("/f", "md5") == hashlib.md5(data).hexdigest()


def test_inflated_marker_is_rejected_and_file_sent_in_full(
    driver: HpssDriver, emu_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = payload(SIZE, seed=5)
    monkeypatch.setenv("HPSS_EMU_FAIL_AFTER", str(600 * KiB))
    monkeypatch.setenv("HPSS_EMU_INFLATE", str(100 * KiB))
    w, err = send(driver, data)
    assert err is not None
    inflated = w.durable()
    assert inflated == RangeSet([ByteRange(0, 700 * KiB)])
    assert (emu_root / ".f.tcpart").stat().st_size == 600 * KiB  # what the storage really holds
    for name in ("HPSS_EMU_FAIL_AFTER", "HPSS_EMU_INFLATE"):
        monkeypatch.delenv(name)
    with pytest.raises(RestartRejected):
        driver.open_write("/f", len(data), inflated)
    w2, err2 = send(driver, data)  # from zero, as the engine does after a rejection
    assert err2 is None and w2.resumed == RangeSet()
    assert (emu_root / "f").read_bytes() == data


def test_bz4719_warns_reports_nothing_unsafe_and_still_ends_correct(
    driver: HpssDriver, emu_root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(writer_mod, "_bz4719_warned", False)
    monkeypatch.setenv("HPSS_EMU_VERSION", "7.4.3")
    data = payload(SIZE, seed=7)
    monkeypatch.setenv("HPSS_EMU_FAIL_AFTER", str(600 * KiB))
    with caplog.at_level(logging.WARNING, logger="transfercore_hpss.writer"):
        w, err = send(driver, data)
        send(driver, data)  # a second failure must not warn again
    assert err is not None
    warnings = [r for r in caplog.records if "BZ4719" in r.getMessage()]
    assert len(warnings) == 1
    # 600 KiB moved, but BytesMoved was unset: only the last completed segment counts.
    marker = w.durable()
    assert marker == RangeSet([ByteRange(0, 512 * KiB)])
    monkeypatch.delenv("HPSS_EMU_FAIL_AFTER")
    w2, err2 = send(driver, data, start=512 * KiB, resume=marker)
    assert err2 is None
    assert (emu_root / "f").read_bytes() == data


def test_rollback_on_error_is_reported_truthfully(
    driver: HpssDriver, emu_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = payload(SIZE, seed=9)
    monkeypatch.setenv("HPSS_EMU_FAIL_AFTER", str(700 * KiB))
    monkeypatch.setenv("HPSS_EMU_ROLLBACK", str(150 * KiB))
    w, err = send(driver, data)
    assert err is not None
    assert w.durable() == RangeSet([ByteRange(0, 550 * KiB)])
    monkeypatch.delenv("HPSS_EMU_FAIL_AFTER")
    monkeypatch.delenv("HPSS_EMU_ROLLBACK")
    w2, err2 = send(driver, data, start=550 * KiB, resume=w.durable())
    assert err2 is None and (emu_root / "f").read_bytes() == data


def test_short_execute_returns_are_continued(
    driver: HpssDriver, emu_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPSS_EMU_SHORT_EXECUTE", str(100 * KiB))
    data = payload(SIZE, seed=11)
    w, err = send(driver, data)
    assert err is None
    assert len(w.markers) > 5 and w.markers[-1] == SIZE
    assert w.markers == sorted(w.markers)
    assert (emu_root / "f").read_bytes() == data


@pytest.mark.parametrize(("name", "error"), [("ENOSPC", NoSpace), ("EDQUOT", QuotaExceeded)])
def test_storage_errors_are_typed(
    driver: HpssDriver, monkeypatch: pytest.MonkeyPatch, name: str, error: type[Exception]
) -> None:
    monkeypatch.setenv("HPSS_EMU_FAIL_AFTER", str(300 * KiB))
    monkeypatch.setenv("HPSS_EMU_FAIL_ERRNO", name)
    _, err = send(driver, payload(SIZE))
    assert isinstance(err, error)


def test_hung_pio_becomes_an_error(emu_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    driver = HpssDriver(options={"block": "64KiB", "segment": "256KiB", "watchdog": 1.0})
    monkeypatch.setenv("HPSS_EMU_HANG_AFTER", str(300 * KiB))
    data = payload(SIZE)
    w, err = send(driver, data)
    assert isinstance(err, HpssHung)
    # The ended Execute still reports what moved before the hang (five blocks).
    end = w.durable().prefix_end()
    assert 256 * KiB <= end <= 320 * KiB
    assert (emu_root / ".f.tcpart").read_bytes()[:end] == data[:end]
    assert not (emu_root / "f").exists()


def test_every_write_invalidates_the_stored_checksum(
    driver: HpssDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transfercore_hpss import checksum

    data = payload(SIZE)
    send(driver, data)
    assert driver.checksum("/f", "md5") == hashlib.md5(data).hexdigest()
    assert checksum.read_all("/f")["state"] == "Valid"
    monkeypatch.setenv("HPSS_EMU_FAIL_AFTER", str(300 * KiB))
    w, _ = send(driver, data)
    # The refused write has not replaced the published file, whose checksum stays valid.
    assert checksum.read_all("/.f.tcpart")["state"] == "Invalid"
    assert checksum.read_all("/f")["state"] == "Valid"
    monkeypatch.delenv("HPSS_EMU_FAIL_AFTER")
    send(driver, data, start=300 * KiB, resume=w.durable())
    assert checksum.read_all("/f")["state"] == "Invalid"  # a resume invalidates too
    assert driver.checksum("/f", "md5") == hashlib.md5(data).hexdigest()


def test_out_of_order_and_oversized_writes_are_refused(driver: HpssDriver) -> None:
    w = driver.open_write("/f", 1000)
    with pytest.raises(InvalidWrite):
        w.write(10, b"x")
    with pytest.raises(InvalidWrite):
        w.write(0, b"x" * 1001)
    w.abort()


def test_empty_file_and_fully_resumed_file(driver: HpssDriver, emu_root: Path) -> None:
    w = driver.open_write("/empty", 0)
    w.complete()
    assert (emu_root / "empty").read_bytes() == b""
    assert record.load("/empty") is None
    # Every byte durable, then a crash before complete(): the resume has nothing to send.
    w = driver.open_write("/f", 1000)
    w.write(0, payload(1000))
    assert w.durable() == RangeSet([ByteRange(0, 1000)])
    w.abort()
    w = driver.open_write("/f", 1000, RangeSet([ByteRange(0, 1000)]))
    w.complete()
    assert w.durable() == RangeSet([ByteRange(0, 1000)])
    assert (emu_root / "f").read_bytes() == payload(1000)
    assert record.load("/f") is None


def test_record_follows_every_execute_return(
    driver: HpssDriver, emu_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = payload(SIZE, seed=13)
    monkeypatch.setenv("HPSS_EMU_FAIL_AFTER", str(700 * KiB))
    w, err = send(driver, data)
    assert err is not None
    # Two whole segments, then the failed Execute's bytes moved: one update each.
    assert w.markers == [256 * KiB, 512 * KiB, 700 * KiB] and w.record_updates == 3
    held = record.load("/.f.tcpart")
    assert held is not None and (held.size, held.durable) == (SIZE, 700 * KiB)
    assert w.durable() == RangeSet.span(0, held.durable)


def test_a_failed_record_update_stops_the_write_at_the_recorded_marker(
    driver: HpssDriver, emu_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transfercore_hpss import api

    data = payload(SIZE, seed=15)
    real = api.set_attrs
    calls: list[int] = []

    def failing(path: str, values: dict[str, str]) -> None:
        # every metadata call that raises the durable end (the first writes the whole record)
        if record.PREFIX + "durable" in values:
            calls.append(int(values[record.PREFIX + "durable"]))
            if len(calls) == 3:
                raise NoSpace("hpss_UserAttrSetAttrs failed: no space", errno=28)
        real(path, values)

    monkeypatch.setattr(api, "set_attrs", failing)
    w, err = send(driver, data)
    assert isinstance(err, NoSpace)
    # Segment 3 moved, but its record update failed: it is not reported.
    assert calls == [256 * KiB, 512 * KiB, 768 * KiB]
    assert w.durable() == RangeSet.span(0, 512 * KiB)
    held = record.load("/.f.tcpart")
    assert held is not None and held.durable == 512 * KiB


def test_durable_does_not_wait_for_a_stalled_pio(emu_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_mod, "STALL_PATIENCE", 0.3)
    driver = HpssDriver(options={"block": "64KiB", "segment": "256KiB", "watchdog": 2.0})
    monkeypatch.setenv("HPSS_EMU_HANG_AFTER", str(300 * KiB))
    data = payload(SIZE)
    w = driver.open_write("/f", len(data))
    w.write(0, data)
    started = time.monotonic()
    # Every segment was handed over, but the movers stopped in the second one.
    assert w.durable() == RangeSet.span(0, 256 * KiB)
    assert time.monotonic() - started < 1.5  # well before the watchdog's 2 s
    w.abort()
    assert isinstance(w._error(), HpssHung)


def test_read_durable_reads_acknowledged_segments_while_pio_writes_on(
    driver: HpssDriver, emu_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transfercore.errors import InvalidRead

    monkeypatch.setenv("HPSS_EMU_CORRUPT_AT", str(300 * KiB))  # a mover damages one byte of segment 2
    data = payload(SIZE)
    w = driver.open_write("/f", SIZE)
    for off in range(0, 512 * KiB, 64 * KiB):
        w.write(off, data[off : off + 64 * KiB])
    marker = w.durable()
    assert marker == RangeSet.span(0, 512 * KiB)
    # The next segment is handed over and PIO goes on with it while the first two are read back.
    w.write(512 * KiB, data[512 * KiB : 600 * KiB])
    back = bytearray(512 * KiB)
    w.read_durable(0, back)
    bad = 300 * KiB
    assert back[:bad] == data[:bad] and back[bad] == data[bad] ^ 0xFF and back[bad + 1 :] == data[bad + 1 : 512 * KiB]
    with pytest.raises(InvalidWrite, match="durable marker"):
        w.read_durable(500 * KiB, bytearray(20 * KiB))  # past what durable() reported
    with pytest.raises(InvalidRead):
        w.read_durable(SIZE - 1, bytearray(2))
    for off in range(600 * KiB, SIZE, 100_000):
        w.write(off, data[off : off + 100_000])
    assert w.durable() == RangeSet.span(0, SIZE)
    tail = bytearray(SIZE - 512 * KiB)
    w.read_durable(512 * KiB, memoryview(tail))
    assert tail == data[512 * KiB :]
    w.complete()
    assert (emu_root / "f").read_bytes()[bad] == data[bad] ^ 0xFF


def test_nothing_shows_under_the_final_name_until_the_rename(
    driver: HpssDriver, emu_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """During a write, after a refused one, and after a crash between the last
    acknowledged byte and the rename, the final name is absent; a resume publishes."""
    from transfercore_hpss import api

    data = payload(SIZE, seed=17)
    w = driver.open_write("/f", SIZE)
    w.write(0, data[: 600 * KiB])
    assert w.durable() == RangeSet.span(0, 512 * KiB)
    assert not (emu_root / "f").exists() and (emu_root / ".f.tcpart").exists()
    assert [i.name for i in driver.list("/")] == []  # the partial is not a user object
    w.abort()
    assert not (emu_root / "f").exists() and driver.partial("/f") == RangeSet.span(0, 576 * KiB)

    # Every byte acknowledged, then the process dies before hpss_Rename returns.
    def crash(src: str, dst: str) -> None:
        raise api.HpssError(f"hpss_Rename({src}, {dst}) failed: the client died")

    real_rename = api.rename
    monkeypatch.setattr(api, "rename", crash)
    w, err = send(driver, data, start=576 * KiB, resume=RangeSet.span(0, 576 * KiB))
    assert isinstance(err, StorageError) and "run the same command again to publish" in str(err)
    assert not w.published and not (emu_root / "f").exists()
    assert driver.partial("/f") == RangeSet.span(0, SIZE)  # resumable, with nothing left to send
    monkeypatch.setattr(api, "rename", real_rename)
    w = driver.open_write("/f", SIZE, RangeSet.span(0, SIZE))
    w.complete()
    assert w.published and (emu_root / "f").read_bytes() == data
    assert not (emu_root / ".f.tcpart").exists() and record.load("/f") is None
    assert [i.name for i in driver.list("/")] == ["f"]


def test_a_replacement_is_published_over_the_old_object_only_when_complete(
    driver: HpssDriver, emu_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transfercore_hpss import checksum

    old = payload(300 * KiB, seed=19)
    send(driver, old)
    assert driver.checksum("/f", "md5") == hashlib.md5(old).hexdigest()
    data = payload(SIZE, seed=21)
    monkeypatch.setenv("HPSS_EMU_FAIL_AFTER", str(400 * KiB))
    w, err = send(driver, data)
    assert err is not None
    # The refused replacement left the old object whole, its stored checksum still valid.
    assert (emu_root / "f").read_bytes() == old and checksum.read_all("/f")["state"] == "Valid"
    monkeypatch.delenv("HPSS_EMU_FAIL_AFTER")
    w, err = send(driver, data, start=400 * KiB, resume=w.durable())
    assert err is None and (emu_root / "f").read_bytes() == data
    # The old object's attributes went with it: the stored checksum is the new write's.
    assert checksum.read_all("/f")["state"] == "Invalid"
    assert driver.checksum("/f", "md5") == hashlib.md5(data).hexdigest()


def test_the_last_execute_is_recorded_only_when_a_marker_asks(driver: HpssDriver, emu_root: Path) -> None:
    """complete() publishes right after the last Execute: no record update for it; a
    durable() before that records it first, so a resume accepts exactly what was reported."""
    data = payload(100 * KiB, seed=21)  # one segment
    w, err = send(driver, data)
    assert err is None and w.record_updates == 0 and w.markers == [100 * KiB]
    assert (emu_root / "f").read_bytes() == data and record.load("/f") is None
    assert w.durable() == RangeSet.span(0, 100 * KiB)  # published: all of it is durable

    # Every byte acknowledged, complete() not yet called (a crash here): nothing recorded past 0.
    w = driver.open_write("/f", len(data))
    w.write(0, data)
    deadline = time.monotonic() + 20
    while w.markers != [100 * KiB] and time.monotonic() < deadline:
        time.sleep(0.01)  # polling the coordinator's Execute return, with a deadline
    assert w.markers == [100 * KiB]
    # A fresh write has no record until its first durable end is reported.
    assert record.load("/.f.tcpart") is None
    assert driver.partial("/f") == RangeSet()
    # A marker is asked for: the record holds it before it is reported.
    assert w.durable() == RangeSet.span(0, 100 * KiB)
    held = record.load("/.f.tcpart")
    assert held is not None and held.durable == 100 * KiB and w.record_updates == 1
    w.abort()
    again = driver.open_write("/f", len(data), RangeSet.span(0, 100 * KiB))
    again.complete()
    assert (emu_root / "f").read_bytes() == data


def test_a_fresh_small_file_costs_no_record_and_a_stale_partial_loses_its_record_at_open(
    driver: HpssDriver, emu_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file published before any marker was reported never needs a resume record: no
    metadata call writes or drops one.  A fresh write over a partial file an earlier write left
    replaces that write's record before a byte is written, so none of its markers can be
    accepted against the new bytes."""
    from transfercore_hpss import api

    calls: list[tuple[str, str]] = []
    real_set, real_delete = api.set_attrs, api.delete_attrs

    def set_attrs(path: str, values: dict[str, str]) -> None:
        calls.append(("set", path))
        real_set(path, values)

    def delete_attrs(path: str, keys: list[str]) -> None:
        calls.append(("delete", path))
        real_delete(path, keys)

    monkeypatch.setattr(api, "set_attrs", set_attrs)
    monkeypatch.setattr(api, "delete_attrs", delete_attrs)
    small = payload(100 * KiB, seed=31)  # one segment
    w, err = send(driver, small)
    assert err is None and (emu_root / "f").read_bytes() == small
    assert calls == [] and w.record_updates == 0

    # An earlier write fails inside its second segment: its partial file and record remain.
    big = payload(SIZE, seed=32)
    monkeypatch.setenv("HPSS_EMU_FAIL_AFTER", str(300 * KiB))
    w, err = send(driver, big)
    monkeypatch.delenv("HPSS_EMU_FAIL_AFTER")
    assert err is not None and w.durable() == RangeSet.span(0, 300 * KiB)
    assert driver.partial("/f") == RangeSet.span(0, 300 * KiB)
    # A fresh write (no marker given) truncates it: the old record goes at the open.
    fresh = driver.open_write("/f", len(big))
    held = record.load("/.f.tcpart")
    assert held is not None and held.durable == 0
    assert driver.partial("/f") == RangeSet()
    fresh.abort()
    with pytest.raises(RestartRejected):
        driver.open_write("/f", len(big), RangeSet.span(0, 300 * KiB))
    assert (emu_root / "f").read_bytes() == small  # the published file is untouched


@pytest.mark.parametrize("chunk", [100_000, 256 * KiB, 300 * KiB])
def test_a_caller_reusing_its_buffer_after_each_write_stores_what_it_wrote(
    driver: HpssDriver, emu_root: Path, chunk: int
) -> None:
    """Blocks from one reused buffer (as a data connection hands them over), and blocks held as
    bytes (as the reorder window holds them) between them: the copies are made, the bytes kept."""
    data = payload(SIZE)
    w = driver.open_write("/f", len(data))
    buf = bytearray(chunk)
    for i, off in enumerate(range(0, len(data), chunk)):
        piece = data[off : off + chunk]
        if i % 3 == 2:
            w.write(off, piece)  # bytes: kept without a copy
            continue
        view = memoryview(buf)[: len(piece)]
        view[:] = piece
        w.write(off, view)
        view[:] = b"\xee" * len(piece)  # the caller's next block: must not reach HPSS
    w.complete()
    assert (emu_root / "f").read_bytes() == data
    assert hashlib.sha256((emu_root / "f").read_bytes()).digest() == hashlib.sha256(data).digest()


# -- several segments in flight (inflight=2): each segment's Execute in a PIO group of its own ------


@pytest.fixture
def driver2(emu_root: Path) -> HpssDriver:
    return HpssDriver(options={"block": 64 * KiB, "segment": 256 * KiB, "watchdog": 5.0, "inflight": 2})


def test_two_segments_in_flight_store_the_file_and_markers_only_grow_at_segment_ends(
    driver2: HpssDriver, emu_root: Path
) -> None:
    data = payload(SIZE, seed=21)
    w, err = send(driver2, data)
    assert err is None
    assert (emu_root / "f").read_bytes() == data
    assert w.segments_executed == 5
    # The acknowledged prefix grows only when a return joins it (a later segment acknowledged
    # first waits for the one before), and always ends at a segment's end.
    assert w.markers == sorted(set(w.markers)) and w.markers[-1] == SIZE
    assert set(w.markers) <= {256 * KiB, 512 * KiB, 768 * KiB, 1024 * KiB, SIZE}
    assert w.durable() == RangeSet.span(0, SIZE)
    assert driver2.checksum("/f", "md5") == hashlib.md5(data).hexdigest()


@pytest.mark.parametrize(
    ("fail_after", "rollback", "durable"),
    [
        # the first group fails 100 KiB into the first segment: the second never got its bytes
        (100 * KiB, 0, 100 * KiB),
        # each group fails 300 KiB into its own bytes: the first 44 KiB into the third segment,
        # after the second group finished the second; the second group's fourth never joins
        (300 * KiB, 0, 556 * KiB),
        # the same, and the failed Execute keeps 20 KiB less than it was handed
        (300 * KiB, 20 * KiB, 536 * KiB),
    ],
)
def test_two_segments_in_flight_a_failure_leaves_the_durable_prefix_and_resumes_from_it(
    driver2: HpssDriver, emu_root: Path, monkeypatch: pytest.MonkeyPatch, fail_after: int, rollback: int,
    durable: int,
) -> None:
    data = payload(SIZE, seed=23)
    monkeypatch.setenv("HPSS_EMU_FAIL_AFTER", str(fail_after))
    if rollback:
        monkeypatch.setenv("HPSS_EMU_ROLLBACK", str(rollback))
    w, err = send(driver2, data)
    assert err is not None
    marker = w.durable()
    assert marker == RangeSet.span(0, durable)
    held = record.load("/.f.tcpart")
    assert held is not None and held.durable == durable
    assert (emu_root / ".f.tcpart").read_bytes()[:durable] == data[:durable]
    assert not (emu_root / "f").exists()
    monkeypatch.delenv("HPSS_EMU_FAIL_AFTER")
    monkeypatch.delenv("HPSS_EMU_ROLLBACK", raising=False)
    w2, err2 = send(driver2, data, start=durable, resume=marker)
    assert err2 is None and w2.resumed == marker
    assert (emu_root / "f").read_bytes() == data
    assert driver2.checksum("/f", "md5") == hashlib.md5(data).hexdigest()


@pytest.mark.parametrize("inflight", ["0", "9"])
def test_segments_in_flight_outside_1_to_8_are_refused(emu_root: Path, inflight: str) -> None:
    from transfercore.errors import OptionError

    with pytest.raises(OptionError, match="inflight"):
        HpssDriver(options={"inflight": inflight})


@pytest.mark.parametrize("chunk", [100_000, 256 * KiB])
def test_blocks_given_away_are_staged_uncopied_and_released_only_once_hpss_took_them(
    driver: HpssDriver, emu_root: Path, chunk: int
) -> None:
    """write_owned (a data connection's block from a pool): the release is the signal that the
    buffer may serve another block, so each release here scribbles over its buffer at once;
    a release that came before the participant's copy would put the scribbles into the file."""
    data = payload(SIZE)
    w = driver.open_write("/f", len(data))
    released: list[int] = []

    def release_of(offset: int, buf: bytearray):  # noqa: ANN202
        def release() -> None:
            buf[:] = b"\xee" * len(buf)
            released.append(offset)
        return release

    offsets = list(range(0, len(data), chunk))
    for off in offsets:
        buf = bytearray(data[off : off + chunk])
        w.write_owned(off, memoryview(buf), release_of(off, buf))
    w.complete()
    assert (emu_root / "f").read_bytes() == data
    assert released == offsets  # each once, in the order HPSS took them


def test_a_completed_write_gives_its_block_buffers_back_without_the_garbage_collector(
    emu_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each PIO group holds a block buffer for the participant and one for the callbacks; the
    writer and its groups point at each other, so without being given back at the end the
    buffers waited for the cyclic collector (4 MiB an upload kept by a server between
    collections), and the next file mapped and faulted in new ones."""
    pool = BlockPool(keep=1 << 30)
    monkeypatch.setattr(pio, "_BUFFERS", pool)
    block = 64 * KiB
    driver = HpssDriver(options={"block": block, "segment": 2 * block, "watchdog": 5.0})
    data = payload(5 * block + 100)
    gc.disable()
    try:
        for name in ("/first", "/second"):
            w = driver.open_write(name, len(data))
            assert pool.free_bytes == 0
            w.write(0, data)
            w.complete()
            assert (emu_root / name[1:]).read_bytes() == data
            deadline = time.monotonic() + 20
            while pool.free_bytes < 2 * block and time.monotonic() < deadline:
                time.sleep(0.02)  # the participant thread lets go of its session as it ends
            assert pool.free_bytes == 2 * block  # the participant's and the callbacks'
            assert w.durable() == RangeSet.span(0, len(data))  # the writer itself is still there
        assert pool.made == 2  # the second file reused the first one's
    finally:
        gc.enable()
