import errno

import pytest

from transfercore import errors


@pytest.mark.parametrize(
    ("code", "cls", "builtin"),
    [
        (errno.ENOENT, errors.NotFound, FileNotFoundError),
        (errno.EACCES, errors.PermissionDenied, PermissionError),
        (errno.ENOSPC, errors.NoSpace, OSError),
        (errno.EDQUOT, errors.QuotaExceeded, OSError),
        (errno.EISDIR, errors.IsADirectory, IsADirectoryError),
        (errno.ENOTDIR, errors.NotADirectory, NotADirectoryError),
    ],
)
def test_storage_errors_are_typed_and_still_oserrors(code, cls, builtin):
    exc = errors.from_oserror(OSError(code, "boom"), "writing /x")
    assert type(exc) is cls
    assert isinstance(exc, builtin) and isinstance(exc, errors.TransferCoreError)
    assert exc.errno == code
    assert "writing /x: boom" in str(exc)
    assert exc.hint  # every mapped error says what to do


def test_a_path_too_long_says_what_the_limits_are():
    exc = errors.from_oserror(OSError(errno.ENAMETOOLONG, "File name too long"), "cannot list /deep")
    assert type(exc) is errors.StorageError and exc.errno == errno.ENAMETOOLONG
    assert "cannot list /deep: File name too long" in str(exc)
    assert "4,096 a path" in exc.hint and "nearer the long path" in exc.hint


def test_unknown_errno_is_a_plain_storage_error():
    exc = errors.from_oserror(OSError(errno.EIO, "I/O error"), "reading")
    assert type(exc) is errors.StorageError and exc.errno == errno.EIO


def test_driver_not_found_names_the_installed_drivers():
    exc = errors.DriverNotFound("s3", ["posix", "mock"])
    assert "'s3'" in str(exc) and "mock, posix" in str(exc)
    assert "pip install transfercore-s3" in str(exc)


def test_driver_load_error_names_the_distribution_and_cause():
    exc = errors.DriverLoadError("hpss", "transfercore-hpss", ImportError("libhpss.so: cannot open"))
    text = str(exc)
    assert "transfercore-hpss" in text and "libhpss.so" in text and "ImportError" in text


def test_restart_rejected_says_the_transfer_starts_again():
    assert "start again from zero" in str(errors.RestartRejected("size 10 < marker end 20"))
