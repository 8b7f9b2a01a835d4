"""``copy --scheduler``: the errors a user meets first, each one line with what to do."""

import time

import pytest

from transfercore.cli import main
from transfercore.cli.exitcodes import ExitCode
from transfercore.testing.loopback import free_port


@pytest.fixture(autouse=True)
def _state(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def test_scheduler_without_r_copies_by_ranges_and_an_unreachable_one_touches_nothing(tmp_path, capsys):
    src = tmp_path / "one"
    src.write_bytes(b"x")
    address = f"tcp://127.0.0.1:{free_port()}"
    assert main(["copy", str(src), str(tmp_path / "two"), "--scheduler", address]) == ExitCode.FAILED
    err = capsys.readouterr().err
    assert err.startswith(f"transfercore: error: cannot reach the Dask scheduler at {address}"), err
    assert "Traceback" not in err
    assert not (tmp_path / "two").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".two")] == []


def test_no_scheduler_at_the_address_fails_clearly_and_touches_nothing(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"x")
    started = time.monotonic()
    address = f"tcp://127.0.0.1:{free_port()}"
    code = main(["copy", "-r", str(src), str(tmp_path / "dst"), "--scheduler", address])
    assert code == ExitCode.FAILED
    err = capsys.readouterr().err
    assert err.startswith(f"transfercore: error: cannot reach the Dask scheduler at {address}"), err
    assert "tcp://HOST:PORT" in err and "Traceback" not in err
    assert not (tmp_path / "dst").exists()
    assert time.monotonic() - started < 30
