import subprocess
import sys

import pytest

from transfercore.cli import SUBCOMMANDS, build_parser, main
from transfercore.cli.exitcodes import ExitCode


def test_every_subcommand_module_registers_its_parser():
    parser = build_parser()
    choices = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    # a module named a_b_cmd registers the command a-b
    assert {name.replace("_", "-") for name in SUBCOMMANDS} <= set(choices)


def test_project_errors_become_one_line_and_a_documented_exit_code(tmp_path, capsys):
    code = main(["copy", str(tmp_path / "missing"), str(tmp_path / "y")])
    assert code == ExitCode.FAILED
    err = capsys.readouterr().err
    assert err.startswith("transfercore: error: source posix://") and "does not exist" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_closed_output_pipe_ends_quietly(tmp_path):
    journal = tmp_path / "j.sqlite"
    from transfercore.journal import Journal, SourceIdentity, State

    with Journal(journal) as j:
        for i in range(2000):
            entry = j.begin(f"posix:///src/{i}", f"posix:///dst/{i}", SourceIdentity(10, 1, "", "f"), {})
            j.finish(entry.id, State.DONE)
    proc = subprocess.Popen(
        [sys.executable, "-m", "transfercore", "status", "--journal", str(journal)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().strip()  # read one line, then hang up, as `| head -1` does
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(30) == ExitCode.BROKEN_PIPE
    assert err == ""


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as info:
        main(["copy"])
    assert info.value.code == ExitCode.USAGE


def test_the_module_runs_as_a_program():
    out = subprocess.run([sys.executable, "-m", "transfercore", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("transfercore ")
