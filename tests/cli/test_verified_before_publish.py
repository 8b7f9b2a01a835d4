"""``transfercore copy`` into a destination that stores other bytes than the source's:
exit 3, nothing under the final name, and the partial object as the message says.

The damage is injected in the destination's write path (the mock's ``flip_at``; a
wrapper around the append example's writes), so only a read-back of what the
storage holds can see it.  The HPSS driver's counterpart is in drivers/hpss/tests.
"""

import os
import random

import pytest
from transfercore_mock import reset_stores

from transfercore.cli import main
from transfercore.cli.exitcodes import ExitCode
from transfercore.errors import NotFound
from transfercore.registry import open_location

SIZE = 600_000
ARGS = ["--block-size", "64K", "--marker-bytes", "128K", "--checksum", "crc32c"]


@pytest.fixture(autouse=True)
def _state(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    reset_stores()
    yield
    reset_stores()


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "src.bin"
    path.write_bytes(random.Random(5).randbytes(SIZE))
    return path


def test_mock_damaged_byte_is_never_published_and_the_partial_is_kept(src, capsys):
    code = main(["copy", str(src), "mock://vb/out?flip_at=300000", *ARGS])
    err = capsys.readouterr().err
    assert code == ExitCode.CHECKSUM_MISMATCH == 3
    assert "nothing was published; the partial object was kept for inspection" in err
    driver = open_location("mock://vb/out").driver
    with pytest.raises(NotFound):
        driver.stat("/out")
    # Kept, as said: the partial object holds the damaged byte.
    assert driver.partial("/out")
    assert driver.partial_bytes("/out", 300_000, 1)[0] == src.read_bytes()[300_000] ^ 0xFF


def test_mock_without_read_back_is_verified_after_publishing_and_removed(src, capsys):
    # A driver that cannot read back (as a third-party one may be): today's path, said plainly.
    code = main(["copy", str(src), "mock://vb/out?flip_at=300000&read_back=false", *ARGS])
    err = capsys.readouterr().err
    assert code == ExitCode.CHECKSUM_MISMATCH
    assert "could not be verified before publishing, so it was removed" in err
    with pytest.raises(NotFound):
        open_location("mock://vb/out").driver.stat("/out")


def test_append_damaged_write_is_never_published_and_the_partial_is_kept(src, tmp_path, capsys, monkeypatch):
    from transfercore_append.driver import AppendWriter

    original = AppendWriter.write

    def damaging(self, offset, data):  # a device that flips one byte on its way to the disk
        data = bytearray(data)
        if offset <= 300_000 < offset + len(data):
            data[300_000 - offset] ^= 0xFF
        original(self, offset, data)

    monkeypatch.setattr(AppendWriter, "write", damaging)
    dst = tmp_path / "out.bin"
    code = main(["copy", str(src), f"append://{dst}", *ARGS])
    err = capsys.readouterr().err
    assert code == ExitCode.CHECKSUM_MISMATCH
    assert "nothing was published; the partial object was kept for inspection" in err
    assert not dst.exists()
    partial = tmp_path / ".out.bin.partial"
    assert partial.exists() and partial.read_bytes()[300_000] == src.read_bytes()[300_000] ^ 0xFF
    assert os.path.getsize(partial) == SIZE
