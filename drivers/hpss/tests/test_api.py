"""The typed wrapper: codes from the header, errors mapped, attributes."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from transfercore_hpss import api
from transfercore_hpss.driver import HpssDriver

from transfercore.errors import (
    AlreadyExists,
    NoSpace,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    StorageError,
)


def test_codes_come_from_the_header() -> None:
    assert api.Code.EINVAL == -errno.EINVAL and api.Code.EIO == -errno.EIO
    assert api.Code.ECONN not in (api.Code.EIO, api.Code.EOM)


@pytest.mark.parametrize(
    ("rc", "cls"),
    [
        (-errno.ENOENT, NotFound),
        (-errno.ENOSPC, NoSpace),
        (-errno.EDQUOT, QuotaExceeded),
        (-errno.EACCES, PermissionDenied),
    ],
)
def test_negative_returns_map_to_project_errors(rc: int, cls: type[Exception]) -> None:
    with pytest.raises(cls):
        api.check(rc, "hpss_Something")
    assert api.check(3, "x") == 3


def test_hpss_specific_codes_are_storage_errors() -> None:
    with pytest.raises(StorageError, match="HPSS_ECONN"):
        api.check(api.Code.ECONN, "hpss_PIOExecute")


def test_version_parsing() -> None:
    assert api.Version.parse("7.4.3").may_have_bz4719
    assert not api.Version.parse("7.5.3").may_have_bz4719
    assert api.Version.parse("10.3.0.0").major == 10
    assert api.Version.parse("garbage").major == 0


def test_user_attributes_round_trip(emu_root: Path) -> None:
    HpssDriver()._login()
    (emu_root / "f").write_bytes(b"x")
    api.set_attrs("/f", {"/hpss/user/cksum/state": "Valid", "/hpss/user/cksum/app": "t"})
    api.set_attrs("/f", {"/hpss/user/cksum/state": "Invalid"})
    got = api.get_attrs("/f", ["/hpss/user/cksum/state", "/hpss/user/cksum/app", "/hpss/user/cksum/none"])
    assert got == {
        "/hpss/user/cksum/state": "Invalid",
        "/hpss/user/cksum/app": "t",
        "/hpss/user/cksum/none": "",
    }
    with pytest.raises(NotFound):
        api.get_attrs("/missing", ["/hpss/user/cksum/state"])


def test_a_created_file_is_a_new_object_without_the_attributes_of_an_old_one(emu_root: Path) -> None:
    """The emulator keeps attributes beside the namespace; a crash inside hpss_Unlink can leave
    them without their file.  As in HPSS, a file created under that name does not inherit them;
    opening a file that exists keeps its own."""
    HpssDriver()._login()
    (emu_root / "f").write_bytes(b"x")
    api.set_attrs("/f", {"/hpss/user/transfercore/durable": "4096"})
    (emu_root / "f").unlink()  # the file gone, its attributes left behind
    fd, _ = api.open_file("/f", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    api.close(fd, "/f")
    assert api.get_attrs("/f", ["/hpss/user/transfercore/durable"]) == {"/hpss/user/transfercore/durable": ""}
    api.set_attrs("/f", {"/hpss/user/transfercore/durable": "8192"})
    fd, _ = api.open_file("/f", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    api.close(fd, "/f")
    assert api.get_attrs("/f", ["/hpss/user/transfercore/durable"]) == {"/hpss/user/transfercore/durable": "8192"}
    with pytest.raises(AlreadyExists):
        api.open_file("/f", os.O_WRONLY | os.O_CREAT | os.O_EXCL)


def test_paths_cannot_leave_the_emulator_root(emu_root: Path) -> None:
    HpssDriver()._login()
    with pytest.raises(StorageError):
        api.lstat("/../etc/passwd")
