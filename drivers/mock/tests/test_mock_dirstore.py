import os

import pytest
from transfercore_mock.dirstore import DirStore

from transfercore.errors import StorageError


def test_temporary_store_is_removed_by_cleanup():
    store = DirStore.temporary("t")
    root = os.path.dirname(store.base)
    assert os.path.isdir(root)
    store.cleanup()
    assert not os.path.exists(root)


def test_names_with_slashes_and_odd_characters_are_kept_apart(tmp_path):
    store = DirStore("s", str(tmp_path))
    for path in ("/a/b", "/a%2Fb", "/a b?c"):
        rec = store.partial_begin(path, 1)
        store.partial_apply(path, rec.token, [(0, path[-1].encode())])
        store.partial_publish(path, rec.token)
    assert sorted(store.object_paths()) == ["/a b?c", "/a%2Fb", "/a/b"]


def test_an_unreadable_record_is_a_storage_error(tmp_path):
    store = DirStore("s", str(tmp_path))
    store.partial_begin("/a", 1)
    with open(store._prec("/a"), "w") as handle:
        handle.write("{torn")
    with pytest.raises(StorageError, match="unreadable"):
        store.partial_record("/a")


def test_two_stores_on_one_directory_see_each_other(tmp_path):
    one, two = DirStore("s", str(tmp_path)), DirStore("s", str(tmp_path))
    rec = one.partial_begin("/a", 2)
    two.partial_apply("/a", rec.token, [(0, b"hi")])
    one.partial_publish("/a", rec.token)
    assert two.object_open("/a").read(0, 2) == b"hi"
