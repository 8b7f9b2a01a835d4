import os
import pickle

from transfercore.campaign import FileState
from transfercore.campaign.tasks import BatchTask, FileSpec, close_endpoints


def _spec(root, rel, started=False):
    st = os.lstat(os.path.join(root, rel))
    return FileSpec(rel, st.st_size, st.st_mtime_ns, st.st_mode & 0o7777, f"{st.st_dev}:{st.st_ino}", started)


def _hidden(path):
    return [n for n in os.listdir(path) if n.startswith(".")]


def test_batch_publishes_verified_files_with_their_mode_and_time(tmp_path):
    src, dst = tmp_path / "s", tmp_path / "d"
    src.mkdir()
    dst.mkdir()
    for i in range(5):
        (src / f"f{i}").write_bytes(os.urandom(i * 1000))
    os.chmod(src / "f3", 0o600)
    os.utime(src / "f3", ns=(1, 1_000_000_123))
    task = BatchTask(str(src), str(dst), tuple(_spec(str(src), f"f{i}") for i in range(5)), "crc32c")
    task = pickle.loads(pickle.dumps(task))  # what a remote worker receives
    try:
        results = task()
    finally:
        close_endpoints()
    assert [r.state for r in results] == [FileState.COMPLETE] * 5
    assert [r.written for r in results] == [0, 1000, 2000, 3000, 4000]
    for i in range(5):
        assert (dst / f"f{i}").read_bytes() == (src / f"f{i}").read_bytes()
    st = os.stat(dst / "f3")
    assert st.st_mode & 0o777 == 0o600 and st.st_mtime_ns == 1_000_000_123
    assert _hidden(dst) == []


def test_a_file_changed_since_the_walk_is_not_published(tmp_path):
    src, dst = tmp_path / "s", tmp_path / "d"
    src.mkdir()
    dst.mkdir()
    (src / "a").write_bytes(b"old")
    (src / "b").write_bytes(b"fine")
    specs = (_spec(str(src), "a"), _spec(str(src), "b"))
    (src / "a").write_bytes(b"newer")
    try:
        results = BatchTask(str(src), str(dst), specs, "crc32c")()
    finally:
        close_endpoints()
    assert results[0].state is FileState.FAILED and results[0].error == "SourceChanged"
    assert results[1].state is FileState.COMPLETE
    assert sorted(os.listdir(dst)) == ["b"]


def test_a_started_file_found_published_is_verified_not_rewritten(tmp_path):
    src, dst = tmp_path / "s", tmp_path / "d"
    src.mkdir()
    dst.mkdir()
    (src / "a").write_bytes(b"content")
    (dst / "a").write_bytes(b"content")
    st = os.stat(src / "a")
    os.utime(dst / "a", ns=(st.st_atime_ns, st.st_mtime_ns))
    (src / "b").write_bytes(b"other")
    (dst / "b").write_bytes(b"OTHER")  # same size and time, different bytes: copied again
    st = os.stat(src / "b")
    os.utime(dst / "b", ns=(st.st_atime_ns, st.st_mtime_ns))
    before = os.stat(dst / "a").st_ino
    try:
        results = BatchTask(str(src), str(dst), (_spec(str(src), "a", True), _spec(str(src), "b", True)))()
    finally:
        close_endpoints()
    assert results[0].reused and results[0].written == 0 and os.stat(dst / "a").st_ino == before
    assert not results[1].reused and (dst / "b").read_bytes() == b"other"


def test_small_local_files_go_through_the_drivers_batch_copy_and_the_rest_the_ordinary_way(tmp_path, monkeypatch):
    import crc32c
    from transfercore_posix.driver import PosixDriver

    from transfercore.campaign.model import dst_facts
    from transfercore.registry import open_location

    src, dst = tmp_path / "s", tmp_path / "d"
    src.mkdir()
    dst.mkdir()
    for i in range(6):
        (src / f"f{i}").write_bytes(os.urandom(i * 700))
    calls = []
    real = PosixDriver.copy_local_batch

    def counting(self, files, algorithm):
        calls.append([f.path.rsplit("/", 1)[-1] for f in files])
        return real(self, files, algorithm)

    monkeypatch.setattr(PosixDriver, "copy_local_batch", counting)
    specs = [_spec(str(src), f"f{i}", started=(i == 4)) for i in range(6)]
    os.unlink(src / "f2")  # gone since the walk: refused by the batch, then failed the ordinary way
    try:
        results = BatchTask(str(src), str(dst), tuple(specs), "crc32c")()
    finally:
        close_endpoints()
    # a file handed out before (started) may be published already: checked the ordinary way
    assert calls == [["f0", "f1", "f2", "f3", "f5"]]
    assert [r.state for r in results] == [FileState.COMPLETE] * 2 + [FileState.FAILED] + [FileState.COMPLETE] * 3
    driver = open_location(str(dst)).driver
    for i in (0, 1, 3, 4, 5):
        data = (src / f"f{i}").read_bytes()
        assert (dst / f"f{i}").read_bytes() == data
        assert results[i].checksum == f"{crc32c.crc32c(data):08x}"
        # what a later run compares, as the destination reports it
        assert results[i].dst == dst_facts(driver.lstat(str(dst / f"f{i}")))
    assert _hidden(dst) == []


def test_a_large_file_found_published_loses_the_record_a_stopped_run_left(tmp_path):
    # A run killed between publishing a large file and removing its resume
    # record: the audit keeps the record for the task, which must drop it.
    from transfercore.campaign.tasks import LargeFileTask
    from transfercore.engine import TransferOptions

    src, dst = tmp_path / "s", tmp_path / "d"
    src.mkdir()
    dst.mkdir()
    data = os.urandom(300_000)
    (src / "big").write_bytes(data)
    (dst / "big").write_bytes(data)
    st = os.stat(src / "big")
    os.utime(dst / "big", ns=(st.st_atime_ns, st.st_mtime_ns))
    (dst / ".big.tcpart.marker").write_text("a record of a write that was published")
    (dst / ".big.0123456789abcdef.tcpart").write_bytes(b"x")
    task = LargeFileTask(str(src), str(dst), _spec(str(src), "big", True), TransferOptions(checksum="crc32c"))
    try:
        result = task()
    finally:
        close_endpoints()
    assert result.state is FileState.COMPLETE and result.reused
    assert (dst / "big").read_bytes() == data
    assert _hidden(dst) == []
