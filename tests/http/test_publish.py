"""Upload records and group commits of the HTTP front end: shared directory fsyncs, uploads published together."""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path

import pytest

from transfercore.http import records
from transfercore.http.publish import Publisher


def test_each_caller_returns_after_an_fsync_begun_after_its_call(monkeypatch: pytest.MonkeyPatch) -> None:
    tick = itertools.count()
    lock = threading.Lock()
    fsyncs: list[tuple[int, int]] = []

    def slow_fsync(_directory: str) -> None:
        with lock:
            start = next(tick)
        time.sleep(0.01)  # a slow disk: callers pile up meanwhile
        with lock:
            fsyncs.append((start, next(tick)))

    monkeypatch.setattr(records, "fsync_dir", slow_fsync)
    group = records.GroupSync("/nowhere")
    calls: list[tuple[int, int]] = []

    def caller() -> None:
        with lock:
            asked = next(tick)
        group.sync()
        with lock:
            calls.append((asked, next(tick)))

    threads = [threading.Thread(target=caller) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(calls) == 40
    for asked, returned in calls:
        assert any(asked < start and end < returned for start, end in fsyncs), (asked, returned)
    assert len(fsyncs) < 40  # shared


def test_a_failed_fsync_fails_its_callers_and_the_next_one_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    failures = [OSError("disk gone")]

    def fsync(_directory: str) -> None:
        if failures:
            raise failures.pop()

    monkeypatch.setattr(records, "fsync_dir", fsync)
    group = records.GroupSync("/nowhere")
    with pytest.raises(OSError, match="disk gone"):
        group.sync()
    group.sync()


def test_uploads_finishing_together_are_published_together(tmp_path: Path) -> None:
    from transfercore_posix.driver import PosixDriver

    driver = PosixDriver(options={"root": str(tmp_path)})
    publisher = Publisher(driver)
    assert publisher._batches  # the POSIX driver has a complete_batch of its own
    data = {f"/f{i}": os.urandom(1000 + i) for i in range(24)}
    writers = {}
    for path, body in data.items():
        writers[path] = w = driver.open_write(path, len(body))
        w.write(0, body)
    errors: dict[str, BaseException] = {}

    def refuse(_writer: object) -> None:
        raise ValueError("digest differs")

    def publish(path: str) -> None:
        try:
            publisher.publish(writers[path], refuse if path == "/f3" else None)
        except BaseException as exc:
            errors[path] = exc

    threads = [threading.Thread(target=publish, args=(path,)) for path in data]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert list(errors) == ["/f3"] and isinstance(errors["/f3"], ValueError)
    assert not (tmp_path / "f3").exists()
    for path, body in data.items():
        if path != "/f3":
            assert (tmp_path / path[1:]).read_bytes() == body


def test_removing_a_record_removes_what_an_interrupted_save_left(tmp_path: Path) -> None:
    from transfercore.http.protocol import UploadRecord

    store = records.RecordStore(tmp_path / "state")
    record = UploadRecord(id="r" * 20, path="/x", length=1, owner="o", protocol="tus", created=0.0, expires=1.0)
    store.save(record)
    (tmp_path / "state" / f".{record.id}.99.77.tmp").write_text("{")  # a save a crash interrupted
    store.remove(record.id)
    assert list((tmp_path / "state").iterdir()) == []
