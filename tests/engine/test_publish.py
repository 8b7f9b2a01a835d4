"""Nothing reaches the destination's final name unless it is the source, whole and verified."""

import os

import pytest

from transfercore.engine import MarkerPolicy, TransferOptions, copy
from transfercore.errors import SourceChanged
from transfercore.journal import State

OPTIONS = TransferOptions(streams=2, block_size=64 * 1024, marker_policy=MarkerPolicy(interval=None, bytes=256 * 1024))
SIZE = 2 * 1024 * 1024


def _in_place_same_size_mtime_restored(path):
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(1000)
        f.write(b"XXXXXXXX")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _appended(path):
    with open(path, "ab") as f:
        f.write(b"more")


@pytest.mark.parametrize("change", [_in_place_same_size_mtime_restored, _appended], ids=["in-place", "appended"])
@pytest.mark.parametrize("checksum", ["crc32c", None], ids=["verified", "unverified"])
def test_a_source_changed_during_the_copy_is_never_published(tmp_path, journal, src_file, change, checksum):
    src = src_file(SIZE)
    dst = tmp_path / "out.bin"
    seen = []

    def meddle(event):
        seen.append(event)
        if event.kind == "marker" and not event.final and len([e for e in seen if e.kind == "marker"]) == 1:
            change(src)

    import attrs

    with pytest.raises(SourceChanged) as info:
        copy(src, os.fspath(dst), attrs.evolve(OPTIONS, checksum=checksum), journal=journal, listeners=[meddle])
    assert not dst.exists()
    message = str(info.value)
    # One statement, and it is true: nothing published, the partial discarded, no talk of resuming.
    assert "nothing was published and the partial copy was discarded" in message
    assert "resume" not in message
    assert not list(tmp_path.glob(".out.bin.*"))
    (error,) = [e for e in seen if e.kind == "error"]
    assert not error.resumable and error.durable_bytes == 0
    entry = journal.find(f"posix://{src}", f"posix://{dst}")
    assert entry.state is State.FAILED and not entry.marker
    # The next run copies the new version whole.
    result = copy(src, os.fspath(dst), OPTIONS, journal=journal)
    assert result.bytes_resumed == 0 and dst.read_bytes() == open(src, "rb").read()
