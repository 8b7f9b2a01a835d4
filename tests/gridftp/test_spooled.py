"""A finished spooled upload stored through a real driver: whole, or nothing under the name."""

from __future__ import annotations

import pytest

from transfercore.gridftp.errors import ReplyError
from transfercore.gridftp.spool import Spool
from transfercore.gridftp.spooled import store_spooled
from transfercore.gridftp.upload import StorePlan
from transfercore.registry import open_location


@pytest.fixture
def driver(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    return open_location(f"posix:///?root={root}").driver, root


def test_a_plain_store_publishes_every_byte(driver, tmp_path):
    drv, root = driver
    spool = Spool(str(tmp_path))
    spool.write(5, b"world")
    spool.write(0, b"hello")
    assert store_spooled(drv, spool, "/f", None) == 10
    assert (root / "f").read_bytes() == b"helloworld"
    spool.close()


def test_an_update_keeps_the_bytes_around_its_slice(driver, tmp_path):
    drv, root = driver
    (root / "f").write_bytes(b"0123456789")
    plan = StorePlan(path="/f", target="/f", size=None, restart=None, ordered=False, writers=1,
                     window=1 << 20, piece=1 << 20, offset=3, base=10)
    spool = Spool(str(tmp_path))
    spool.write(0, b"abc")
    store_spooled(drv, spool, "/f", plan)
    assert (root / "f").read_bytes() == b"012abc6789"
    spool.close()


def test_holes_store_nothing(driver, tmp_path):
    drv, root = driver
    spool = Spool(str(tmp_path))
    spool.write(5, b"world")
    with pytest.raises(ReplyError, match="Upload has holes") as err:
        store_spooled(drv, spool, "/f", None)
    assert err.value.code == 451
    assert not (root / "f").exists()
    spool.close()
