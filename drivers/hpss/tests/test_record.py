"""The resume record in HPSS user-defined attributes."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from transfercore_hpss import api, record
from transfercore_hpss.driver import HpssDriver


@pytest.fixture
def logged_in(emu_root: Path) -> Path:
    HpssDriver()._login()
    (emu_root / "f").write_bytes(b"x" * 10)
    return emu_root


def test_round_trip_update_and_remove(logged_in: Path) -> None:
    assert record.load("/f") is None
    rec = record.ResumeRecord.start(1000, api.lstat("/f").ino)
    assert rec.durable == 0 and len(rec.token) == 16 and rec.object_id == api.lstat("/f").ino
    record.save("/f", rec, {"/hpss/user/other/key": "kept"})
    assert record.load("/f") == rec
    record.set_durable("/f", 600)
    assert record.load("/f") == attrs.evolve(rec, durable=600)
    record.remove("/f")
    assert record.load("/f") is None
    # Only the record's keys go: other attributes of the file stay.
    assert api.get_attrs("/f", ["/hpss/user/other/key"]) == {"/hpss/user/other/key": "kept"}
    record.remove("/f")  # removing what is not there is no error


@pytest.mark.parametrize(("key", "value"), [("size", "ten"), ("durable", "2000"), ("object", "-")])
def test_malformed_or_impossible_records_are_ignored(logged_in: Path, key: str, value: str) -> None:
    record.save("/f", record.ResumeRecord(1000, 500, "t", 7, 0))
    api.set_attrs("/f", {record.PREFIX + key: value})
    assert record.load("/f") is None
