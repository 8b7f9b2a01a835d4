import pytest
from transfercore_mock.dirstore import DirStore
from transfercore_mock.store import MemoryStore
from transfercore_mock.stores import get_store

from transfercore.errors import NotFound, StorageError
from transfercore.ranges import RangeSet


@pytest.fixture(params=["memory", "dir"])
def store(request, tmp_path):
    return MemoryStore("s") if request.param == "memory" else DirStore("s", str(tmp_path))


def test_partial_lifecycle(store):
    rec = store.partial_begin("/a", 6)
    assert store.partial_record("/a") == rec and rec.ranges == RangeSet()
    store.partial_apply("/a", rec.token, [(0, b"abc"), (4, b"ef")])
    store.partial_set_ranges("/a", rec.token, RangeSet.of((0, 3), (4, 6)))
    assert store.partial_record("/a").ranges == RangeSet.of((0, 3), (4, 6))
    assert store.partial_read("/a", 0, 6) == b"abc\0ef"
    store.partial_apply("/a", rec.token, [(3, b"d")])
    store.partial_publish("/a", rec.token)
    assert store.partial_record("/a") is None
    handle = store.object_open("/a")
    assert handle.size == 6 and handle.read(0, 6) == b"abcdef"
    handle.close()
    assert store.object_paths() == ["/a"]


def test_a_stale_token_is_refused(store):
    old = store.partial_begin("/a", 4)
    store.partial_begin("/a", 4)
    for call in (lambda: store.partial_apply("/a", old.token, []),
                 lambda: store.partial_set_ranges("/a", old.token, RangeSet()),
                 lambda: store.partial_publish("/a", old.token)):
        with pytest.raises(StorageError, match="discarded or restarted"):
            call()


def test_objects_and_dirs(store):
    rec = store.partial_begin("/a", 1)
    store.partial_apply("/a", rec.token, [(0, b"x")])
    store.partial_publish("/a", rec.token)
    store.object_rename("/a", "/b")
    assert store.object_meta("/a") is None and store.object_meta("/b").size == 1
    with pytest.raises(NotFound):
        store.object_open("/a")
    assert store.object_delete("/b") and not store.object_delete("/b")
    store.dir_add("/d")
    assert store.dir_paths() == {"/d"}
    store.dir_remove("/d")
    assert store.dir_paths() == set()
    store.partial_begin("/p", 1)
    store.partial_discard("/p")
    assert store.partial_record("/p") is None


def test_registry_returns_one_store_per_name():
    assert get_store("x") is get_store("x")
    assert get_store("x") is not get_store("y")
