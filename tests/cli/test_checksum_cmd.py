import hashlib
import json
import zlib

import pytest

from transfercore.cli import main


@pytest.fixture
def obj(tmp_path):
    path = tmp_path / "o.bin"
    path.write_bytes(b"hello world" * 100_000)
    return path


def test_md5_by_reading_back(obj, capsys):
    assert main(["checksum", str(obj), "--algorithm", "MD5"]) == 0
    assert capsys.readouterr().out.split()[:2] == ["MD5", hashlib.md5(obj.read_bytes()).hexdigest()]


def test_json_and_gridftp_names(obj, capsys):
    assert main(["checksum", str(obj), "-a", "ADLER32", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["algorithm"] == "adler32" and out["checksum"] == f"{zlib.adler32(obj.read_bytes()):08x}"
    assert out["method"] == "read-back"


def test_unknown_algorithm(obj, capsys):
    assert main(["checksum", str(obj), "-a", "crc64"]) == 2
    assert "unknown checksum algorithm" in capsys.readouterr().err


def test_missing_and_directory(tmp_path, capsys):
    assert main(["checksum", str(tmp_path / "nope")]) == 1
    assert "No such file or directory" in capsys.readouterr().err
    assert main(["checksum", str(tmp_path)]) == 1
    assert "is a directory" in capsys.readouterr().err


def test_storage_checksum_is_used_when_the_driver_has_one(capsys):
    from transfercore_mock import reset_stores

    from transfercore.registry import open_location

    reset_stores()
    ep = open_location("mock://c/x")
    w = ep.driver.open_write("/x", 3)
    w.write(0, b"abc")
    w.complete()
    assert main(["checksum", "mock://c/x", "-a", "sha256", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["checksum"] == hashlib.sha256(b"abc").hexdigest() and out["method"] == "storage"
    reset_stores()
