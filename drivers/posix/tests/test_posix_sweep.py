"""Driver.sweep_partials and hardlink on POSIX."""

import os

from transfercore_posix import PosixDriver

from transfercore.ranges import ByteRange, RangeSet


def hidden(d):
    return sorted(n for n in os.listdir(d) if n.startswith("."))


def test_sweep_removes_the_named_leftovers_and_keeps_the_resumable_ones(tmp_path):
    driver = PosixDriver()
    for name in ("gone", "resume", "other"):
        w = driver.open_write(f"{tmp_path}/{name}", 10)
        w.write(0, b"x" * 5)
        w.durable()  # a partial file and its record, as a killed writer leaves them
        w.close()
    (tmp_path / ".gone.tcpart.marker.tmp-0123abcd").write_text("temp record")
    (tmp_path / ".not-ours").write_text("a user's hidden file")
    (tmp_path / "gone").write_text("a published namesake stays")
    removed, kept = driver.sweep_partials(str(tmp_path), discard={"gone", "absent"}, keep={"resume"})
    assert (removed, kept) == (1, 1)
    left = hidden(tmp_path)
    assert not [n for n in left if n.startswith(".gone.")]
    assert [n for n in left if n.startswith(".resume.")] and [n for n in left if n.startswith(".other.")]
    assert ".not-ours" in left and (tmp_path / "gone").read_text() == "a published namesake stays"
    assert driver.partial(f"{tmp_path}/resume") == RangeSet([ByteRange(0, 5)])
    assert driver.sweep_partials(str(tmp_path / "missing"), {"x"}) == (0, 0)


def test_hardlink_replaces_the_name_atomically(tmp_path):
    driver = PosixDriver()
    (tmp_path / "first").write_text("shared")
    (tmp_path / "second").write_text("an older file")
    driver.hardlink(f"{tmp_path}/second", f"{tmp_path}/first")
    assert os.stat(tmp_path / "second").st_ino == os.stat(tmp_path / "first").st_ino
    assert driver.lstat(f"{tmp_path}/first").links == 2
    assert hidden(tmp_path) == []
