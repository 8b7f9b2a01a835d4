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
    import sqlite3

    from transfercore.journal import Journal

    journal = tmp_path / "j.sqlite"
    with Journal(journal):
        pass
    # More listing than a pipe buffers, written in one transaction (not one fsync per row).
    with sqlite3.connect(journal) as db:
        db.executemany(
            "INSERT INTO transfers (source, destination, size, source_mtime_ns, source_identity,"
            " source_fingerprint, options, state, created, updated) VALUES (?, ?, 10, 1, '', 'f', '{}', 'done', 0, 0)",
            [(f"posix:///src/{i}", f"posix:///dst/{i}") for i in range(2000)],
        )
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


def test_a_command_builds_only_its_own_parser():
    """``transfercore copy`` imports no other subcommand's module (the servers'
    configuration, the conformance kit): a short copy's start-up is shorter."""
    code = (
        "import sys\n"
        "from transfercore.cli import build_parser\n"
        "parser = build_parser('serve-http')\n"
        "choices = parser._subparsers._group_actions[0].choices\n"
        "print(sorted(choices), sorted(m for m in sys.modules if m.startswith('transfercore.cli.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("] [") == ["['serve-http'", "'transfercore.cli.exitcodes', 'transfercore.cli.serve_http_cmd']\n"]


def test_the_full_parser_answers_help_and_unknown_words(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    listed = capsys.readouterr().out
    assert all(name.replace("_", "-") in listed for name in SUBCOMMANDS)
    with pytest.raises(SystemExit) as info:
        main(["cpy", "a", "b"])
    assert info.value.code == ExitCode.USAGE
    assert "invalid choice: 'cpy'" in capsys.readouterr().err
