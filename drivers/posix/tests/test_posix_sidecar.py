import json
import os

import pytest
from transfercore_posix import names, sidecar
from transfercore_posix.sidecar import CorruptSidecar, SidecarRecord

from transfercore.ranges import RangeSet

RECORD = SidecarRecord(size=1000, ranges=RangeSet.of((0, 100), (200, 300)), dev=5, ino=77, token="0123456789abcdef")


def test_round_trip(tmp_path):
    sidecar.store(str(tmp_path), "obj", RECORD)
    assert sidecar.load(str(tmp_path), "obj") == RECORD
    assert os.listdir(tmp_path) == [names.sidecar_name("obj")]  # no temporary left


def test_missing_record_is_none(tmp_path):
    assert sidecar.load(str(tmp_path), "obj") is None


def test_replacing_keeps_one_record(tmp_path):
    sidecar.store(str(tmp_path), "obj", RECORD)
    newer = RECORD.with_ranges(RangeSet.span(0, 1000))
    sidecar.store(str(tmp_path), "obj", newer)
    assert sidecar.load(str(tmp_path), "obj") == newer
    assert len(os.listdir(tmp_path)) == 1


def test_empty_ranges_round_trip():
    empty = RECORD.with_ranges(RangeSet())
    assert sidecar.decode(sidecar.encode(empty)) == empty


@pytest.mark.parametrize("cut", [0, 1, 10, -2])
def test_torn_record_is_refused(cut):
    data = sidecar.encode(RECORD)
    with pytest.raises(CorruptSidecar):
        sidecar.decode(data[:cut])


def test_edited_record_is_refused():
    doc = json.loads(sidecar.encode(RECORD))
    doc["ranges"] = "0-1000"
    with pytest.raises(CorruptSidecar, match="checksum"):
        sidecar.decode(json.dumps(doc).encode())


def _signed(body):
    from transfercore_posix.sealed import seal

    return seal(body)


def test_self_consistent_but_invalid_records_are_refused():
    base = sidecar._body(RECORD)
    with pytest.raises(CorruptSidecar, match="past its size"):
        sidecar.decode(_signed(base | {"ranges": "0-2000"}))
    with pytest.raises(CorruptSidecar, match="bad ranges"):
        sidecar.decode(_signed(base | {"ranges": "5-1"}))
    with pytest.raises(CorruptSidecar, match="bad ranges"):
        sidecar.decode(_signed(base | {"ranges": 7}))
    with pytest.raises(CorruptSidecar, match="file identity"):
        sidecar.decode(_signed(base | {"dev": True}))
    with pytest.raises(CorruptSidecar, match="token"):
        sidecar.decode(_signed(base | {"token": "short"}))
    with pytest.raises(CorruptSidecar, match="format"):
        sidecar.decode(_signed(base | {"version": 99}))
    with pytest.raises(CorruptSidecar, match="lacks"):
        sidecar.decode(_signed({k: v for k, v in base.items() if k != "ino"}))


def test_failed_store_keeps_the_old_record(tmp_path, monkeypatch):
    sidecar.store(str(tmp_path), "obj", RECORD)

    def no_space(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    from transfercore.errors import NoSpace

    with pytest.raises(NoSpace):
        sidecar.store(str(tmp_path), "obj", RECORD.with_ranges(RangeSet.span(0, 1000)))
    monkeypatch.undo()
    assert sidecar.load(str(tmp_path), "obj") == RECORD
    assert os.listdir(tmp_path) == [names.sidecar_name("obj")]
