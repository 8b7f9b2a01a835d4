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
